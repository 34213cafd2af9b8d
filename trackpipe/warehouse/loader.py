"""`trackpipe load`: load a run's warehouse partitions into DuckDB or PostgreSQL, or write Vertica
load scripts. No Beam here. docs/warehouse.md describes the behaviour for users.

A load:
1. opens the warehouse and creates the tables when missing (DDL from trackpipe.warehouse.sql);
2. takes the output's lock, finishes a half-done publish (`recover`), lists the partitions
   `OUT/warehouse/<stream>/dt=<day>/part-*` and takes a private snapshot of their files in a
   local temp folder (hard links when possible, else copies; downloads for s3:// outputs) while
   computing each partition's checksum, then releases the lock: the output is only locked
   while it is read;
3. per (stream, day), in ONE transaction: deletes the day's rows, inserts the partition's rows,
   records the load in the bookkeeping table. A partition whose checksum equals the last
   recorded load of that (stream, day) is skipped; a day whose last load came from this output
   but whose partition is gone (the run found no rows for it) is emptied.
A failure rolls back the day being loaded (earlier days stay loaded) and is reported as one line
naming the file.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import hashlib
import io
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass

from trackpipe import __version__, storage
from trackpipe.config import STREAMS, Config, load_config
from trackpipe.dates import selected_days
from trackpipe.errors import ConfigError, TrackpipeError
from trackpipe.events.layout import MANIFEST_NAME, WAREHOUSE_DIR
from trackpipe.events.schema import OUTPUT_COLUMNS, OUTPUT_SCHEMA
from trackpipe.events.times import day_to_date
from trackpipe.storage.s3_settings import add_arguments as add_s3_arguments
from trackpipe.warehouse import sql as wsql

DEFAULT_DB_NAME = "warehouse.duckdb"
VERTICA_DIR = "vertica"
BATCH_ROWS = 16_384
_DT_DIR = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")
_PART_FILE = re.compile(r"^part-[^/\\]*\.(parquet|avro)$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
EMPTY_CHECKSUM = hashlib.sha256(b"").hexdigest()


# ---------------------------------------------------------------------------------------------
# The output side: partitions, snapshots, checksums


@dataclass(frozen=True)
class Partition:
    stream: str
    dt: str
    files: tuple[str, ...]  # full paths in the output (local or URL), sorted by file name

    @property
    def names(self) -> list[str]:
        return [_basename(f) for f in self.files]


@dataclass
class Snapshot:
    """A partition's files as a private local copy, with the partition's checksum."""

    partition: Partition
    local: list[str]  # local paths, same order as partition.files
    checksum: str
    rows: int | None = None  # from the Parquet footers; None when a file is Avro

    def original(self, local_path: str) -> str:
        return self.partition.files[self.local.index(local_path)]


@dataclass(frozen=True)
class LastLoad:
    checksum: str
    row_count: int
    files: tuple[str, ...]
    output: str


@dataclass
class Outcome:
    stream: str
    dt: str
    action: str  # loaded | skipped | emptied
    rows: int = 0
    removed: int = 0

    def line(self) -> str:
        where = f"{self.stream} dt={self.dt}"
        if self.action == "skipped":
            return f"{where}: skipped (unchanged since the last load)"
        if self.action == "emptied":
            return f"{where}: emptied (partition gone from the output; {plural(self.removed, 'row')} deleted)"
        replaced = f", replacing {self.removed:,}" if self.removed else ""
        return f"{where}: loaded {plural(self.rows, 'row')}{replaced}"


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _basename(path: str) -> str:
    return path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def normalise_output(output: str) -> str:
    """The output as recorded in the bookkeeping table: absolute local path or URL without a
    trailing slash (the same normalisation as `trackpipe run`)."""
    if storage.is_remote(output):
        return output.rstrip("/")
    return os.path.abspath(output)


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
            if not match or not _PART_FILE.match(parts[1]) or not _valid_date(match.group(1)):
                continue  # not a partition file (e.g. a stray file next to the partitions)
            day = match.group(1)
            if dates is None or day in dates:
                by_day.setdefault(day, []).append(path)
        for day, files in sorted(by_day.items()):
            found.append(Partition(stream, day, tuple(sorted(files, key=_basename))))
    return found


def _valid_date(text: str) -> bool:
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
        name = _basename(path)
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
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while True:
                block = handle.read(8 * 1024 * 1024)
                if not block:
                    return digest.hexdigest()
                digest.update(block)
    except OSError as exc:
        raise TrackpipeError(f"cannot read {original}: {exc.strerror or exc}") from None


def check_files(snap: Snapshot) -> None:
    """Read each file's header/footer and schema before anything is deleted, so a garbage file
    fails the load up front, naming the file. Sets `snap.rows` from the Parquet footers."""
    import pyarrow as pa

    rows: int | None = 0
    for local, original in zip(snap.local, snap.partition.files):
        if local.endswith(".parquet"):
            import pyarrow.parquet as pq

            try:
                parquet = pq.ParquetFile(local)
                schema = parquet.schema_arrow
                count = parquet.metadata.num_rows
            except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for bad files
                raise TrackpipeError(f"{original}: not a readable Parquet file ({_first_line(exc)})") from None
            rows = None if rows is None else rows + count
            types = {f.name: f.type for f in schema}
        else:
            import fastavro

            try:
                with open(local, "rb") as handle:
                    header = fastavro.reader(handle).writer_schema
            except Exception as exc:  # noqa: BLE001 - fastavro raises ValueError, EOFError, ...
                raise TrackpipeError(f"{original}: not a readable Avro file ({_first_line(exc)})") from None
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else exc.__class__.__name__)[:400]


# ---------------------------------------------------------------------------------------------
# Reading partition files as Arrow record batches (PostgreSQL, and Avro for DuckDB)


def parquet_batches(path: str) -> Iterator:
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=OUTPUT_COLUMNS):
        yield _conform(batch)


def avro_batches(path: str) -> Iterator:
    """Avro container -> record batches of OUTPUT_SCHEMA (timestamps arrive as aware datetimes)."""
    import fastavro
    import pyarrow as pa

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
    import pyarrow as pa

    if batch.schema.equals(OUTPUT_SCHEMA):
        return batch
    columns = [batch.column(f.name).cast(f.type) for f in OUTPUT_SCHEMA]
    return pa.RecordBatch.from_arrays(columns, schema=OUTPUT_SCHEMA)


def file_batches(path: str) -> Iterator:
    return parquet_batches(path) if path.endswith(".parquet") else avro_batches(path)


# ---------------------------------------------------------------------------------------------
# Warehouses


def redact(url: str) -> str:
    """The URL without its password, for messages and reports."""
    return re.sub(r"^([a-z]+://[^:/@]*):[^@/]*@", r"\1:***@", url)


def parse_url(url: str) -> tuple[str, str]:
    """('duckdb', path) or ('postgres', url)."""
    if url.startswith("duckdb://"):
        path = url[len("duckdb://") :]
        if path in ("/:memory:", ":memory:"):
            return "duckdb", ":memory:"
        if not path or path.endswith("/"):
            raise ConfigError(f"--warehouse {url}: give the DuckDB file, e.g. duckdb:///data/warehouse.duckdb")
        return "duckdb", path
    if url.startswith(("postgresql://", "postgres://")):
        return "postgres", url
    raise ConfigError(
        f"unsupported warehouse URL {redact(url)!r}: use duckdb:///path/to/file.duckdb or postgresql://user:password@host:port/db "
        "(for Vertica, --emit-sql vertica writes load scripts)"
    )


class Warehouse:
    """One warehouse connection. Subclasses provide the dialect's statements; the day replace
    logic (one transaction: lock, re-check, delete, insert, record) lives here."""

    dialect = ""

    def __init__(self, url: str, config: Config):
        self.url = url
        self.wh = config.warehouse

    # -- dialect hooks
    def execute(self, sql: str, params: tuple | list = ()):
        raise NotImplementedError

    def transaction(self):
        raise NotImplementedError

    def lock_day(self, table: str, dt: str) -> None:
        """Serialise concurrent loads of one day (PostgreSQL); DuckDB allows one writer anyway."""

    def insert_file(self, table: str, dt: str, path: str) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def param(self) -> str:
        return "?"

    # -- shared logic
    def ensure_tables(self) -> None:
        with self.transaction():
            self.lock_day("ddl", "ddl")
            for statement in wsql.all_ddl(self.dialect, self.wh):
                self.execute(statement)

    def last_loads(self, stream: str) -> dict[str, LastLoad]:
        """The last recorded load of every day of a stream."""
        p = self.param()
        sql = (
            f"SELECT dt, checksum, row_count, files, output FROM ("
            f" SELECT dt, checksum, row_count, files, output,"
            f" row_number() OVER (PARTITION BY dt ORDER BY loaded_at DESC, load_id DESC) AS rn"
            f" FROM {self.wh.loads_table} WHERE stream = {p}) AS latest WHERE rn = 1"
        )
        rows = self.execute(sql, (stream,)).fetchall()
        return {_iso(dt): LastLoad(checksum, int(n), tuple(files or ()), output) for dt, checksum, n, files, output in rows}

    def last_checksum(self, stream: str, dt: str) -> str | None:
        p = self.param()
        sql = (
            f"SELECT checksum FROM {self.wh.loads_table} WHERE stream = {p} AND dt = CAST({p} AS DATE)"
            " ORDER BY loaded_at DESC, load_id DESC LIMIT 1"
        )
        row = self.execute(sql, (stream, dt)).fetchone()
        return row[0] if row else None

    def delete_day(self, table: str, dt: str) -> int:
        cursor = self.execute(f"DELETE FROM {table} WHERE dt = CAST({self.param()} AS DATE)", (dt,))
        return _rowcount(cursor)

    def record(self, load_id: str, stream: str, dt: str, names: list[str], rows: int, checksum: str, output: str) -> None:
        p = self.param()
        columns = ", ".join(wsql.LOADS_COLUMN_NAMES)
        values = ", ".join([p, p, f"CAST({p} AS DATE)", p, p, p, p, p])
        now = _dt.datetime.now(_dt.UTC)
        self.execute(
            f"INSERT INTO {self.wh.loads_table} ({columns}) VALUES ({values})",
            (load_id, stream, dt, list(names), rows, checksum, now, output),
        )

    def replace_day(self, snap: Snapshot, load_id: str, output: str) -> Outcome:
        part = snap.partition
        table = self.wh.table_for(part.stream)
        with self.transaction():
            self.lock_day(table, part.dt)
            if self.last_checksum(part.stream, part.dt) == snap.checksum:
                return Outcome(part.stream, part.dt, "skipped")  # a concurrent load did it meanwhile
            removed = self.delete_day(table, part.dt)
            rows = 0
            for local in snap.local:
                try:
                    rows += self.insert_file(table, part.dt, local)
                except TrackpipeError:
                    raise
                except Exception as exc:  # noqa: BLE001 - database and reader errors differ per backend
                    message = _first_line(exc).replace(local, snap.original(local))
                    raise TrackpipeError(
                        f"cannot load {snap.original(local)}: {message}; {part.stream} dt={part.dt} was left as it was"
                    ) from None
            if snap.rows is not None and rows != snap.rows:
                raise TrackpipeError(f"loaded {rows} rows for {part.stream} dt={part.dt} but its files hold {snap.rows}; rolled back")
            self.record(load_id, part.stream, part.dt, part.names, rows, snap.checksum, output)
        return Outcome(part.stream, part.dt, "loaded", rows=rows, removed=removed)

    def empty_day(self, stream: str, dt: str, load_id: str, output: str) -> Outcome:
        table = self.wh.table_for(stream)
        with self.transaction():
            self.lock_day(table, dt)
            if self.last_checksum(stream, dt) == EMPTY_CHECKSUM:
                return Outcome(stream, dt, "skipped")
            removed = self.delete_day(table, dt)
            self.record(load_id, stream, dt, [], 0, EMPTY_CHECKSUM, output)
        return Outcome(stream, dt, "emptied", removed=removed)

    def query(self, sql: str) -> tuple[list[str], list[tuple]]:
        cursor = self.execute(sql)
        return [d[0] for d in cursor.description], cursor.fetchall()


def _iso(value) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _rowcount(cursor) -> int:
    count = getattr(cursor, "rowcount", -1)
    if count is not None and count >= 0:
        return int(count)
    row = cursor.fetchone()  # DuckDB returns the count as a result row
    return int(row[0]) if row else 0


class DuckDBWarehouse(Warehouse):
    dialect = "duckdb"

    def __init__(self, url: str, config: Config, path: str, read_only: bool = False):
        super().__init__(url, config)
        import duckdb

        if path != ":memory:" and not read_only:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        try:
            self.con = duckdb.connect(path, read_only=read_only)
        except duckdb.Error as exc:
            raise TrackpipeError(f"cannot open the DuckDB database {path}: {_first_line(exc)}") from None

    def execute(self, sql: str, params: tuple | list = ()):
        return self.con.execute(sql, list(params)) if params else self.con.execute(sql)

    @contextlib.contextmanager
    def transaction(self):
        self.con.begin()
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):  # keep the original error, whatever state DuckDB is in
                self.con.rollback()
            raise
        self.con.commit()

    def insert_file(self, table: str, dt: str, path: str) -> int:
        columns = ", ".join(OUTPUT_COLUMNS)
        if path.endswith(".parquet"):
            source = f"read_parquet({wsql.literal(path)})"
            return self._count(self.execute(f"INSERT INTO {table} ({columns}, dt) SELECT {columns}, CAST(? AS DATE) FROM {source}", (dt,)))
        import pyarrow as pa

        reader = pa.RecordBatchReader.from_batches(OUTPUT_SCHEMA, avro_batches(path))
        self.con.register("trackpipe_avro_source", reader)
        try:
            sql = f"INSERT INTO {table} ({columns}, dt) SELECT {columns}, CAST(? AS DATE) FROM trackpipe_avro_source"
            return self._count(self.execute(sql, (dt,)))
        finally:
            self.con.unregister("trackpipe_avro_source")

    @staticmethod
    def _count(cursor) -> int:
        row = cursor.fetchone()
        return int(row[0]) if row else 0

    def delete_day(self, table: str, dt: str) -> int:
        return self._count(self.execute(f"DELETE FROM {table} WHERE dt = CAST(? AS DATE)", (dt,)))

    def close(self) -> None:
        self.con.close()


class PostgresWarehouse(Warehouse):
    dialect = "postgres"

    def __init__(self, url: str, config: Config):
        super().__init__(url, config)
        import psycopg

        try:
            self.conn = psycopg.connect(url, autocommit=True, connect_timeout=30, application_name="trackpipe load")
        except psycopg.Error as exc:
            raise TrackpipeError(f"cannot connect to {redact(url)}: {_first_line(exc)}") from None

    def param(self) -> str:
        return "%s"

    def execute(self, sql: str, params: tuple | list = ()):
        return self.conn.execute(sql, params or None)

    def transaction(self):
        return self.conn.transaction()

    def lock_day(self, table: str, dt: str) -> None:
        self.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"trackpipe:{table}:{dt}",))

    def insert_file(self, table: str, dt: str, path: str) -> int:
        """COPY ... FROM STDIN in CSV: each Arrow batch is turned into CSV by pyarrow's C++ writer
        (strings always quoted, nulls as empty unquoted fields: exactly PostgreSQL's CSV rules).
        Memory holds one batch (BATCH_ROWS rows) at a time. The server's parsing dominates the
        time (psycopg's queued writer, which overlaps sending with formatting, gained nothing)."""
        import pyarrow as pa
        import pyarrow.csv as pacsv

        day = pa.scalar(_dt.date.fromisoformat(dt), pa.date32())
        options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
        columns = ", ".join([*OUTPUT_COLUMNS, "dt"])
        names = [*OUTPUT_COLUMNS, "dt"]
        rows = 0
        with self.conn.cursor() as cursor:
            copy_sql = f"COPY {table} ({columns}) FROM STDIN (FORMAT csv)"
            with cursor.copy(copy_sql) as copy:
                for batch in file_batches(path):
                    arrays = [*batch.columns, pa.repeat(day, batch.num_rows)]
                    data = _csv(pa, pacsv, pa.RecordBatch.from_arrays(arrays, names=names), options)
                    copy.write(data)
                    rows += batch.num_rows
        return rows

    def close(self) -> None:
        self.conn.close()


def _csv(pa, pacsv, batch, options) -> bytes:
    buffer = io.BytesIO()
    pacsv.write_csv(batch, buffer, options)
    data = buffer.getvalue()
    if b"\x00" in data:  # rare: redo the batch without NUL characters
        buffer = io.BytesIO()
        pacsv.write_csv(_without_nul(pa, batch), buffer, options)
        data = buffer.getvalue()
    return data


def _without_nul(pa, batch):
    """PostgreSQL text cannot hold NUL characters: they become U+FFFD (the replacement character)."""
    import pyarrow.compute as pc

    arrays = [pc.replace_substring(c, "\x00", "\ufffd") if pa.types.is_string(c.type) else c for c in batch.columns]
    return pa.RecordBatch.from_arrays(arrays, schema=batch.schema)


def open_warehouse(url: str, config: Config, read_only: bool = False) -> Warehouse:
    kind, target = parse_url(url)
    if kind == "duckdb":
        return DuckDBWarehouse(url, config, target, read_only=read_only)
    return PostgresWarehouse(url, config)


def default_url(output: str) -> str:
    if storage.is_remote(output):
        raise ConfigError("--warehouse is required for an s3:// output (the default DuckDB file lives in a local output folder)")
    return f"duckdb:///{os.path.join(os.path.abspath(output), DEFAULT_DB_NAME).lstrip('/')}"


# ---------------------------------------------------------------------------------------------
# The load


def new_load_id() -> str:
    return f"load-{_dt.datetime.now(_dt.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@contextlib.contextmanager
def output_errors(output: str):
    """Storage errors (an unreachable bucket, missing S3 settings, ...) as one TrackpipeError."""
    try:
        yield
    except TrackpipeError:
        raise
    except Exception as exc:  # noqa: BLE001 - Beam's file systems wrap backend errors in many types
        raise TrackpipeError(f"cannot read the output {output}: {_first_line(exc)}") from None


def check_output(output: str) -> None:
    with output_errors(output):
        found = storage.exists(storage.join(output, MANIFEST_NAME)) or storage.exists(storage.join(output, WAREHOUSE_DIR))
    if not found:
        raise TrackpipeError(f"{output} is not a trackpipe output (no {MANIFEST_NAME}, no {WAREHOUSE_DIR}/ folder)")


@contextlib.contextmanager
def read_output(output: str, load_id: str):
    """Hold the output's lock while reading it: finish a half-done publish first."""
    from trackpipe.storage.journal import recover
    from trackpipe.storage.lock import OutputLock

    check_output(output)
    try:
        lock = OutputLock(output, load_id)
        lock.acquire()
    except NotImplementedError as exc:  # e.g. locks on object stores not available yet
        raise TrackpipeError(f"cannot lock {output}: {exc}") from None
    try:
        with output_errors(output):
            recover(output)
            yield
    finally:
        lock.release()


def _streams(streams: list[str] | None) -> list[str]:
    chosen = list(streams) if streams else list(STREAMS)
    for stream in chosen:
        if stream not in STREAMS:
            raise ConfigError(f"unknown stream {stream!r} (choose from {', '.join(STREAMS)})")
    return [s for s in STREAMS if s in chosen]


def _dates(dates: list[str] | None) -> set[str] | None:
    if dates is None:
        return None
    bad = [d for d in dates if not _valid_date(d)]
    if bad:
        raise ConfigError(f"dates must be YYYY-MM-DD, got {bad[0]!r}")
    return set(dates)


def load_output(
    output: str,
    url: str | None,
    dates: list[str] | None = None,
    config: Config | None = None,
    streams: list[str] | None = None,
) -> str:
    """Load the output's partitions (these days, or every day found) into the warehouse at `url`
    (None: OUT/warehouse.duckdb). Returns the report text; raises TrackpipeError on failure."""
    started = time.monotonic()
    config = config or Config()
    output = normalise_output(output)
    url = url or default_url(output)
    chosen = _streams(streams)
    wanted = _dates(dates)
    load_id = new_load_id()
    check_output(output)  # before the default DuckDB file could be created in a wrong folder
    warehouse = open_warehouse(url, config)
    outcomes: list[Outcome] = []
    tmp = tempfile.mkdtemp(prefix="trackpipe-load-")
    try:
        try:
            warehouse.ensure_tables()
            last = {stream: warehouse.last_loads(stream) for stream in chosen}
        except Exception as exc:  # noqa: BLE001 - any database error: one line
            if isinstance(exc, TrackpipeError):
                raise
            raise TrackpipeError(f"cannot prepare the tables in {redact(url)}: {_first_line(exc)}") from None
        with read_output(output, load_id):
            partitions = find_partitions(output, chosen, wanted)
            snaps = [snapshot(p, os.path.join(tmp, p.stream, f"dt={p.dt}")) for p in partitions]
        # The lock is released: everything below works on the private snapshot.
        plan: list[tuple[str, str, Snapshot | None]] = []
        present = {(p.stream, p.dt) for p in partitions}
        for snap in snaps:
            part = snap.partition
            previous = last[part.stream].get(part.dt)
            if previous and previous.checksum == snap.checksum:
                outcomes.append(Outcome(part.stream, part.dt, "skipped"))
            else:
                check_files(snap)
                plan.append((part.stream, part.dt, snap))
        for stream in chosen:
            for day, previous in last[stream].items():
                if (stream, day) in present or (wanted is not None and day not in wanted):
                    continue
                if previous.output == output and previous.checksum != EMPTY_CHECKSUM:
                    plan.append((stream, day, None))
        plan.sort(key=lambda item: (STREAMS.index(item[0]), item[1]))
        for stream, day, snap in plan:
            try:
                if snap is None:
                    outcomes.append(warehouse.empty_day(stream, day, load_id, output))
                else:
                    outcomes.append(warehouse.replace_day(snap, load_id, output))
            except TrackpipeError as exc:
                done = sum(1 for o in outcomes if o.action != "skipped")
                earlier = f" ({plural(done, 'day')} loaded or emptied before this one stay committed)" if done else ""
                raise TrackpipeError(f"{exc}{earlier}") from None
            except Exception as exc:  # noqa: BLE001 - database errors: one line naming the day
                raise TrackpipeError(
                    f"cannot load {stream} dt={day} into {redact(url)}: {_first_line(exc)}; the day was left as it was"
                ) from None
    finally:
        warehouse.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return report(outcomes, url, time.monotonic() - started)


def report(outcomes: list[Outcome], url: str, seconds: float) -> str:
    outcomes = sorted(outcomes, key=lambda o: (STREAMS.index(o.stream), o.dt))
    lines = [o.line() for o in outcomes]
    loaded = [o for o in outcomes if o.action == "loaded"]
    skipped = sum(1 for o in outcomes if o.action == "skipped")
    emptied = sum(1 for o in outcomes if o.action == "emptied")
    if not outcomes:
        lines.append(f"total: nothing to load (no partitions selected) into {redact(url)}")
    else:
        rows = sum(o.rows for o in loaded)
        lines.append(
            f"total: {len(loaded)} loaded ({plural(rows, 'row')}), {skipped} skipped (unchanged), {emptied} emptied "
            f"into {redact(url)} in {seconds:.1f} s"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Vertica scripts


def emit_vertica(
    output: str,
    sql_dir: str | None = None,
    dates: list[str] | None = None,
    config: Config | None = None,
    streams: list[str] | None = None,
) -> str:
    """Write one `vsql -f` script per stream and day; returns the report text."""
    config = config or Config()
    output = normalise_output(output)
    chosen = _streams(streams)
    wanted = _dates(dates)
    sql_dir = sql_dir or storage.join(output, VERTICA_DIR)
    if not storage.is_remote(sql_dir):
        sql_dir = os.path.abspath(sql_dir)
    load_id = new_load_id()
    written = []
    with read_output(output, load_id):
        partitions = find_partitions(output, chosen, wanted)
        for part in partitions:
            avro = [f for f in part.files if not f.endswith(".parquet")]
            if avro:
                raise TrackpipeError(f"{avro[0]}: Vertica scripts load Parquet only; rerun trackpipe with --format parquet")
        scripts = []
        tmp = tempfile.mkdtemp(prefix="trackpipe-vertica-")
        try:
            for part in partitions:
                snap = snapshot(part, os.path.join(tmp, part.stream, f"dt={part.dt}"))
                check_files(snap)
                scripts.append((part.stream, part.dt, list(part.files), part.names, snap.rows or 0, snap.checksum))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    present = {(p.stream, p.dt) for p in partitions}
    for stream in chosen:
        for day in sorted(wanted or ()):
            if (stream, day) not in present:  # a requested day without rows: the script empties it
                scripts.append((stream, day, [], [], 0, EMPTY_CHECKSUM))
    for stream, day, files, names, rows, checksum in sorted(scripts, key=lambda s: (STREAMS.index(s[0]), s[1])):
        text = wsql.vertica_script(
            stream=stream,
            dt=day,
            table=config.warehouse.table_for(stream),
            loads_table=config.warehouse.loads_table,
            files=files,
            names=names,
            row_count=rows,
            checksum=checksum,
            load_id=load_id,
            output=output,
            generated_by=f"trackpipe {__version__}",
        )
        path = storage.join(sql_dir, f"{stream}-{day}.sql")
        storage.write_bytes(path, text.encode())
        written.append(f"{stream} dt={day}: {path} ({'empties the day' if not files else f'{rows:,} rows, {len(files)} file(s)'})")
    stale = _stale_scripts(sql_dir, chosen, wanted, {(s[0], s[1]) for s in scripts})
    for path in stale:  # the folder mirrors the selection: no script for a day that has no partition now
        storage.delete_file(path)
    removed = f", {len(stale)} stale script(s) removed" if stale else ""
    written.append(
        f"total: {len(scripts)} Vertica script(s) in {sql_dir}{removed}; run each with vsql -f (not tested against a Vertica server)"
    )
    return "\n".join(written)


_SCRIPT_NAME = re.compile(r"^(\w+)-(\d{4}-\d{2}-\d{2})\.sql$")


def _stale_scripts(sql_dir: str, streams: list[str], wanted: set[str] | None, current: set[tuple[str, str]]) -> list[str]:
    """Scripts of earlier emits for the selected streams and days that this emit did not write."""
    if not storage.exists(sql_dir):
        return []
    stale = []
    for path in storage.list_files(sql_dir):
        match = _SCRIPT_NAME.match(_basename(path))
        if not match or path[: -len(_basename(path)) - 1] != sql_dir.rstrip("/"):
            continue  # not ours, or in a subfolder
        stream, day = match.groups()
        if stream in streams and (wanted is None or day in wanted) and (stream, day) not in current:
            stale.append(path)
    return stale


# ---------------------------------------------------------------------------------------------
# Example query (for `make run`)


def example_query_sql(config) -> str:
    wh = config.warehouse
    return (
        f"SELECT 'research' AS stream, dt, count(*) AS events, sum(copies) AS input_lines\n"
        f"FROM {wh.research_table} GROUP BY dt\n"
        f"UNION ALL\n"
        f"SELECT 'internal_bi' AS stream, dt, count(*) AS events, sum(copies) AS input_lines\n"
        f"FROM {wh.internal_bi_table} GROUP BY dt\n"
        f"ORDER BY dt DESC, stream\n"
        f"LIMIT 10"
    )


def example_query(url: str, config) -> str:
    """One example query (events per stream and day, the 10 latest days) and its result table."""
    config = config or Config()
    sql = example_query_sql(config)
    kind, _ = parse_url(url)
    warehouse = open_warehouse(url, config, read_only=kind == "duckdb")
    try:
        columns, rows = warehouse.query(sql)
    except Exception as exc:  # noqa: BLE001 - a missing table, a closed server, ...
        raise TrackpipeError(f"the example query failed on {redact(url)}: {_first_line(exc)} (load the output first)") from None
    finally:
        warehouse.close()
    return f"{sql};\n\n{format_table(columns, rows)}"


def format_table(columns: list[str], rows: list[tuple]) -> str:
    """A plain-text table (numbers right-aligned), as pasted in docs/warehouse.md."""
    cells = [[_cell(v) for v in row] for row in rows]
    numeric = [all(isinstance(row[i], (int, float)) or row[i] is None for row in rows) and bool(rows) for i in range(len(columns))]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]

    def fmt(values):
        return " | ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    lines = [fmt(columns), "-+-".join("-" * w for w in widths)]
    lines.extend(fmt(r) for r in cells)
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.2f}"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


# ---------------------------------------------------------------------------------------------
# Command line


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 1, like every other trackpipe failure
        raise ConfigError(f"{message} (see trackpipe load --help)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="trackpipe load",
        description="Load a trackpipe output's warehouse partitions (OUT/warehouse/<stream>/dt=<day>/part-*.parquet\n"
        "or .avro) into DuckDB or PostgreSQL, or write Vertica load scripts. One table per stream; each day is\n"
        "replaced in one transaction (delete the day, insert the partition, record it in the bookkeeping table).\n"
        "A partition unchanged since its last load is skipped; a day loaded before from this output whose\n"
        "partition is gone (the run found no rows for it) is emptied. The output is locked while it is read.",
        epilog="Examples:\n"
        "  trackpipe load --output out                       # into out/warehouse.duckdb\n"
        "  trackpipe load --output out --warehouse postgresql://me:secret@db:5432/analytics --date 2026-11-02\n"
        "  trackpipe load --emit-sql vertica --output out    # scripts in out/vertica/\n"
        "See docs/warehouse.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--output", metavar="DIR", required=True, help="The trackpipe output folder to load (local or s3://).")
    parser.add_argument(
        "--warehouse",
        metavar="URL",
        help="Where to load: duckdb:///path/to/file.duckdb or postgresql://user:password@host:port/db. "
        f"Default for a local output: duckdb:///<DIR>/{DEFAULT_DB_NAME}; required for an s3:// output.",
    )
    parser.add_argument(
        "--emit-sql",
        choices=["vertica"],
        metavar="DIALECT",
        help="Instead of loading, write one SQL script per stream and day for this database (only: vertica), "
        "to run with `vsql -f`. Parquet outputs only.",
    )
    parser.add_argument("--sql-dir", metavar="DIR", help=f"Folder for the --emit-sql scripts (default: <DIR>/{VERTICA_DIR}/).")
    parser.add_argument("--date", metavar="YYYY-MM-DD", help="Load only this day.")
    parser.add_argument("--start-date", metavar="YYYY-MM-DD", help="First day to load (with --end-date).")
    parser.add_argument("--end-date", metavar="YYYY-MM-DD", help="Last day to load, inclusive (with --start-date).")
    parser.add_argument(
        "--stream",
        action="append",
        choices=list(STREAMS),
        help="Load only this stream (repeatable; default: both, research and internal_bi).",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="YAML config; its `warehouse` section names the tables (default: research_events, internal_bi_events, trackpipe_loads).",
    )
    add_s3_arguments(parser)
    return parser


def selected_dates(date: str | None, start: str | None, end: str | None) -> list[str] | None:
    """The days asked for on the command line (None: every partition found); the same rules
    and messages as `trackpipe run`."""
    days = selected_days(date, start, end)
    return None if days is None else [day_to_date(d) for d in sorted(days)]


def main(argv: list[str]) -> int:
    try:
        args = _parser().parse_args(argv)
        if args.emit_sql and args.warehouse:
            raise ConfigError("use either --warehouse (load) or --emit-sql (write scripts), not both")
        if args.sql_dir and not args.emit_sql:
            raise ConfigError("--sql-dir goes with --emit-sql")
        config = load_config(args.config)
        dates = selected_dates(args.date, args.start_date, args.end_date)
        from trackpipe.storage.s3_settings import configure_from_args

        configure_from_args(args)
        if args.emit_sql:
            text = emit_vertica(args.output, args.sql_dir, dates=dates, config=config, streams=args.stream)
        else:
            text = load_output(args.output, args.warehouse, dates=dates, config=config, streams=args.stream)
    except TrackpipeError as exc:
        if os.environ.get("TRACKPIPE_DEBUG"):
            traceback.print_exc()
        print(f"trackpipe: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - a bug: still one line (TRACKPIPE_DEBUG=1 shows the traceback)
        if os.environ.get("TRACKPIPE_DEBUG"):
            traceback.print_exc()
        print(
            f"trackpipe: error: unexpected {exc.__class__.__name__}: {_first_line(exc)} (TRACKPIPE_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1
    print(text)
    return 0


def describe_ddl(config: Config | None = None) -> str:
    """The DDL per dialect as pasted in docs/warehouse.md: the research table (the internal_bi
    table is the same with its own name) and the bookkeeping table."""
    wh = (config or Config()).warehouse
    parts = []
    for dialect in wsql.DIALECTS:
        statements = wsql.table_ddl(dialect, wh.research_table) + wsql.loads_ddl(dialect, wh.loads_table)
        parts.append(f"-- {dialect}\n" + ";\n\n".join(statements) + ";")
    return "\n\n".join(parts)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
