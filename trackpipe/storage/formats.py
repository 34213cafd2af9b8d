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
from trackpipe.events.schema import TS, avro_schema

# Dictionary-encode only the columns whose values repeat; for event, context, raw ids and
# URLs, dictionaries cost time and do not shrink the file (measured: see docs/benchmarks.md).
DICTIONARY_COLUMNS = [
    "name",
    "event_type",
    "event_source",
    "username",
    "course_id",
    "org_id",
    "session",
    "ip",
    "agent",
    "host",
    "accept_language",
    "source_file",
    "kind",
    "source",
]


def gzip_bytes(data: bytes, level: int = 2) -> bytes:
    """A single-member gzip stream with a fixed header (mtime 0, no name), via ISA-L."""
    buffer = io.BytesIO()
    writer = GzipWriter(buffer, level)
    writer.write(data)
    writer.close()
    return buffer.getvalue()


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


class _Sink:
    """A binary output for `path`: a local file, or a spooled upload for object stores."""

    def __init__(self, path: str):
        self.path = path
        if storage.is_remote(path):
            self._handle = storage.open_write(path)
            self.stream = pa.PythonFile(self._handle, mode="w")
        else:
            import os

            os.makedirs(os.path.dirname(path), exist_ok=True)
            self._handle = None
            self.stream = pa.OSFile(path, "wb")

    def close(self) -> None:
        self.stream.close()
        if self._handle is not None:
            self._handle.close()


class TableWriter:
    """Streams tables of one schema into one Parquet, Avro or Arrow IPC file: rows go out batch
    by batch, so a chunk never has to sit in memory whole. `.rows` counts what was written."""

    def __init__(self, path: str, schema: pa.Schema, fmt: str, parquet_compression: str = "zstd", avro_codec: str = "deflate"):
        self.path = path
        self.rows = 0
        self.batches = 0
        self._fmt = fmt
        self._sink = _Sink(path)
        if fmt == "parquet":
            compression = None if parquet_compression == "none" else parquet_compression
            self._writer = pq.ParquetWriter(self._sink.stream, schema, compression=compression, use_dictionary=DICTIONARY_COLUMNS)
        elif fmt == "arrow":
            self._writer = pa.ipc.new_file(self._sink.stream, schema)
        elif fmt == "avro":
            self._schema = fastavro.parse_schema(avro_schema(schema))
            self._writer = fastavro.write.Writer(self._sink.stream, self._schema, codec=avro_codec, sync_marker=b"trackpipe-avro-1")
        else:
            raise ValueError(f"unknown format {fmt!r}")

    def write(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        if self._fmt == "avro":
            for record in _avro_records(table):
                self._writer.write(record)
        else:
            self._writer.write_table(table)
        self.rows += table.num_rows
        self.batches += 1

    def close(self) -> None:
        if self._fmt == "avro":
            self._writer.flush()
        else:
            self._writer.close()
        self._sink.close()


def _avro_records(table: pa.Table):
    columns = {}
    for field in table.schema:
        column = table.column(field.name)
        columns[field.name] = (column.cast(pa.int64()) if field.type == TS else column).to_pylist()
    names = table.schema.names
    return (dict(zip(names, values)) for values in zip(*(columns[n] for n in names)))


class GuardedWriter:
    """A TableWriter whose disk errors (full, read-only) fail the run with a clear message."""

    def __init__(self, workdir, path: str, schema, fmt: str, **options):
        self.path = path
        self._workdir = workdir
        self._writer = workdir.guard(path, lambda: TableWriter(path, schema, fmt, **options))

    @property
    def rows(self) -> int:
        return self._writer.rows

    @property
    def batches(self) -> int:
        return self._writer.batches

    def write(self, table) -> None:
        self._workdir.guard(self.path, self._writer.write, table)

    def close(self) -> None:
        self._workdir.guard(self.path, self._writer.close)
