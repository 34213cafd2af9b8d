"""File formats trackpipe writes: Parquet, Avro (fastavro, declared schema), gzipped JSON lines.

Every writer is deterministic: the same rows give the same bytes (no timestamps, no file names
in gzip headers), so reruns can be compared byte for byte.
"""
from __future__ import annotations

import io
import struct

import fastavro
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from isal import isal_zlib

from trackpipe import storage
from transforms.schema import TS, avro_schema

EXTENSIONS = {"parquet": ".parquet", "avro": ".avro"}
_PARSED_AVRO: dict = {}


def write_table(path: str, table: pa.Table, fmt: str, parquet_compression: str = "zstd", avro_codec: str = "deflate") -> None:
    if fmt == "parquet":
        compression = None if parquet_compression == "none" else parquet_compression
        storage.write_arrow(path, lambda sink: pq.write_table(table, sink, compression=compression))
    elif fmt == "avro":
        storage.write_bytes(path, avro_bytes(table, avro_codec))
    else:
        raise ValueError(f"unknown format {fmt!r}")


def avro_bytes(table: pa.Table, codec: str = "deflate") -> bytes:
    """An Avro container file of the rows, timestamps as timestamp-micros."""
    key = (tuple(table.schema.names), table.schema.to_string())
    schema = _PARSED_AVRO.get(key)
    if schema is None:
        schema = _PARSED_AVRO[key] = fastavro.parse_schema(avro_schema(table.schema))
    # Timestamps go in as integers (µs), which is what timestamp-micros stores.
    columns = {}
    for field in table.schema:
        column = table.column(field.name)
        columns[field.name] = (column.cast(pa.int64()) if field.type == TS else column).to_pylist()
    names = table.schema.names
    records = (dict(zip(names, values)) for values in zip(*(columns[n] for n in names)))
    buffer = io.BytesIO()
    # A fixed sync marker keeps the bytes the same on every rerun.
    fastavro.writer(buffer, schema, records, codec=codec, sync_marker=b"trackpipe-avro-1")
    return buffer.getvalue()


def gzip_bytes(data: bytes, level: int = 2) -> bytes:
    """A single-member gzip stream with a fixed header (mtime 0, no name), via ISA-L."""
    comp = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15)
    body = comp.compress(data) + comp.flush()
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    trailer = struct.pack("<II", isal_zlib.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)
    return header + body + trailer


class GzipWriter:
    """Streams a deterministic gzip file (fixed header) to a binary sink."""

    def __init__(self, sink, level: int = 2):
        self._sink = sink
        self._comp = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15)
        self._crc = 0
        self._size = 0
        sink.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")

    def write(self, data: bytes) -> None:
        self._crc = isal_zlib.crc32(data, self._crc)
        self._size += len(data)
        out = self._comp.compress(data)
        if out:
            self._sink.write(out)

    def close(self) -> None:
        self._sink.write(self._comp.flush())
        self._sink.write(struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF))


def jsonl_gz_bytes(records: list[dict]) -> bytes:
    return gzip_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
