"""Tier 1: both ways of writing a package give the same bytes, in (received_at, time, event_id) order."""

from __future__ import annotations

import gzip
import io
import random

import pyarrow as pa

from trackpipe.events.partitions import PACKAGE_SCHEMA, package_order
from trackpipe.storage.formats import GzipWriter
from transforms.package import _write_merged_streams, _write_sorted_in_memory


def _fragments(tmp_path, parts: int = 4, rows: int = 500):
    rng = random.Random(3)
    frags = []
    everything = []
    for part in range(parts):
        recs = []
        for i in range(rows):
            recv = rng.randrange(1_000_000, 1_000_050)  # many ties on received_at and time
            recs.append(("mitx", 1, recv, recv - rng.randrange(3), f"{rng.getrandbits(128):032x}", b'{"n": %d, "p": %d}' % (i, part)))
        table = pa.Table.from_pylist([dict(zip(PACKAGE_SCHEMA.names, r)) for r in recs], schema=PACKAGE_SCHEMA)
        table = table.take(pa.array(package_order(table)))  # fragments are sorted, as the writer stages them
        path = tmp_path / f"frag{part}.arrow"
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, PACKAGE_SCHEMA) as writer:
            for start in range(0, rows, 128):
                writer.write_table(table.slice(start, 128))
        frags.append((str(path), 0, (rows + 127) // 128, rows))
        everything.extend(recs)
    return frags, everything


def _gz(write, frags) -> tuple[int, bytes]:
    buffer = io.BytesIO()
    gz = GzipWriter(buffer)
    n = write(frags, gz)
    gz.close()
    return n, buffer.getvalue()


def test_in_memory_and_streamed_packages_are_identical_and_ordered(tmp_path):
    frags, everything = _fragments(tmp_path)
    n1, sorted_bytes = _gz(_write_sorted_in_memory, frags)
    n2, streamed_bytes = _gz(_write_merged_streams, frags)
    assert n1 == n2 == len(everything)
    assert sorted_bytes == streamed_bytes
    want = [r[5] for r in sorted(everything, key=lambda r: (r[2], r[3], r[4]))]
    assert gzip.decompress(sorted_bytes).split(b"\n") == want + [b""]
