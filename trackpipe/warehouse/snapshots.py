"""The output side of a load: the partitions found under `OUT/warehouse/`, a private snapshot
of each one's files with its checksum, up-front checks of the files, and their rows as Arrow
record batches. No database here.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa

from trackpipe import storage
from trackpipe.errors import TrackpipeError, first_line
from trackpipe.events.layout import WAREHOUSE_DIR
from trackpipe.events.schema import OUTPUT_COLUMNS, OUTPUT_SCHEMA

BATCH_ROWS = 16_384


_DT_DIR = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")


_PART_FILE = re.compile(r"^part-[^/\\]*\.(parquet|avro)$")


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


EMPTY_CHECKSUM = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class Partition:
    stream: str
    dt: str
    files: tuple[str, ...]  # full paths in the output (local or URL), sorted by file name

    @property
    def names(self) -> list[str]:
        return [basename(f) for f in self.files]


@dataclass
class Snapshot:
    """A partition's files as a private local copy, with the partition's checksum."""

    partition: Partition
    local: list[str]  # local paths, same order as partition.files
    checksum: str
    rows: int | None = None  # from the Parquet footers; None when a file is Avro

    def original(self, local_path: str) -> str:
        return self.partition.files[self.local.index(local_path)]


def basename(path: str) -> str:
    return path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def partition_checksum(named_digests: list[tuple[str, str]]) -> str:
    """SHA-256 over the partition's files: the `sha256sum`-style listing `<hex digest>  <name>\\n`
    of every file, sorted by name (so `LC_ALL=C sha256sum part-* | sha256sum` in the partition
    folder gives the same value). A partition without files has the SHA-256 of nothing."""
    listing = "".join(f"{digest}  {name}\n" for name, digest in sorted(named_digests))
    return hashlib.sha256(listing.encode()).hexdigest()


def find_partitions(output: str, streams: list[str], dates: set[str] | None) -> list[Partition]:
    """Every partition under OUT/warehouse for these streams (and days, when given)."""
    found = []
    for stream in streams:
        root = storage.join(output, WAREHOUSE_DIR, stream)
        if not storage.exists(root):
            continue
        prefix = root.rstrip("/") + ("/" if storage.is_remote(root) else os.sep)
        by_day: dict[str, list[str]] = {}
        for path in storage.list_files(root):
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix) :].replace(os.sep, "/").split("/")
            match = _DT_DIR.match(parts[0]) if len(parts) == 2 else None
            if not match or not _PART_FILE.match(parts[1]) or not valid_date(match.group(1)):
                continue  # not a partition file (e.g. a stray file next to the partitions)
            day = match.group(1)
            if dates is None or day in dates:
                by_day.setdefault(day, []).append(path)
        for day, files in sorted(by_day.items()):
            found.append(Partition(stream, day, tuple(sorted(files, key=basename))))
    return found


def valid_date(text: str) -> bool:
    try:
        _dt.date.fromisoformat(text)
    except ValueError:
        return False
    return bool(_DATE.match(text))


def snapshot(partition: Partition, folder: str) -> Snapshot:
    """Copy (local: hard-link when possible) the partition's files into `folder`, hashing them."""
    os.makedirs(folder, exist_ok=True)
    local, digests = [], []
    for path in partition.files:
        name = basename(path)
        target = os.path.join(folder, name)
        if storage.is_remote(path):
            digest = _copy_hashing(storage.open_read(path), target, path)
        else:
            try:
                os.link(path, target)  # a run replaces partitions by renaming folders, never rewrites files
                digest = _hash_file(target, path)
            except FileNotFoundError:
                raise TrackpipeError(f"{path} disappeared while being read; is another program changing the output?") from None
            except OSError:
                digest = _copy_hashing(open(path, "rb"), target, path)  # another file system
        local.append(target)
        digests.append((name, digest))
    return Snapshot(partition, local, partition_checksum(digests))


def _copy_hashing(source, target: str, original: str) -> str:
    digest = hashlib.sha256()
    try:
        with source as src, open(target, "wb") as dst:
            while True:
                block = src.read(8 * 1024 * 1024)
                if not block:
                    break
                digest.update(block)
                dst.write(block)
    except OSError as exc:
        raise TrackpipeError(f"cannot read {original}: {exc.strerror or exc}") from None
    return digest.hexdigest()


def _hash_file(path: str, original: str) -> str:
    try:
        return storage.local_file_digest(path)[0]
    except OSError as exc:
        raise TrackpipeError(f"cannot read {original}: {exc.strerror or exc}") from None


def check_files(snap: Snapshot) -> None:
    """Read each file's header/footer and schema before anything is deleted, so a garbage file
    fails the load up front, naming the file. Sets `snap.rows` from the Parquet footers."""

    rows: int | None = 0
    for local, original in zip(snap.local, snap.partition.files):
        if local.endswith(".parquet"):
            import pyarrow.parquet as pq

            try:
                parquet = pq.ParquetFile(local)
                schema = parquet.schema_arrow
                count = parquet.metadata.num_rows
            except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for bad files
                raise TrackpipeError(f"{original}: not a readable Parquet file ({first_line(exc)})") from None
            rows = None if rows is None else rows + count
            types = {f.name: f.type for f in schema}
        else:
            import fastavro

            try:
                with open(local, "rb") as handle:
                    header = fastavro.reader(handle).writer_schema
            except Exception as exc:  # noqa: BLE001 - fastavro raises ValueError, EOFError, ...
                raise TrackpipeError(f"{original}: not a readable Avro file ({first_line(exc)})") from None
            rows = None  # Avro has no row count up front
            types = {f["name"]: None for f in header.get("fields", [])}
        missing = [c for c in OUTPUT_COLUMNS if c not in types]
        if missing:
            raise TrackpipeError(f"{original}: not a trackpipe partition file (missing columns {', '.join(missing)})")
        for expected in OUTPUT_SCHEMA:
            actual = types[expected.name]
            if actual is not None and actual != expected.type and not _castable(pa, actual, expected.type):
                raise TrackpipeError(f"{original}: column {expected.name} is {actual}, expected {expected.type}")
    snap.rows = rows


def _castable(pa, actual, expected) -> bool:
    try:
        pa.array([], actual).cast(expected)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


def parquet_batches(path: str) -> Iterator:
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=OUTPUT_COLUMNS):
        yield _conform(batch)


def avro_batches(path: str) -> Iterator:
    """Avro container -> record batches of OUTPUT_SCHEMA (timestamps arrive as aware datetimes)."""
    import fastavro

    with open(path, "rb") as handle:
        chunk = []
        for record in fastavro.reader(handle):
            chunk.append(record)
            if len(chunk) >= BATCH_ROWS:
                yield _records_to_batch(pa, chunk)
                chunk = []
        if chunk:
            yield _records_to_batch(pa, chunk)


def _records_to_batch(pa, records: list[dict]):
    arrays = [pa.array([r.get(f.name) for r in records], type=f.type) for f in OUTPUT_SCHEMA]
    return pa.RecordBatch.from_arrays(arrays, schema=OUTPUT_SCHEMA)


def _conform(batch):
    """The batch with exactly OUTPUT_SCHEMA (column order and types)."""

    if batch.schema.equals(OUTPUT_SCHEMA):
        return batch
    columns = [batch.column(f.name).cast(f.type) for f in OUTPUT_SCHEMA]
    return pa.RecordBatch.from_arrays(columns, schema=OUTPUT_SCHEMA)


def file_batches(path: str) -> Iterator:
    return parquet_batches(path) if path.endswith(".parquet") else avro_batches(path)
