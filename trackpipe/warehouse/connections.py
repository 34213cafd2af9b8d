"""A warehouse connection: the day-replace transaction every database shares (lock the day,
re-check, delete, insert, record the load), the bookkeeping queries, and warehouse URLs. Each
database adds its statements in its own module (duckdb_warehouse, postgres_warehouse).
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass

from trackpipe.config import Config
from trackpipe.errors import ConfigError, TrackpipeError, first_line
from trackpipe.warehouse.ddl import LOADS_COLUMN_NAMES, all_ddl
from trackpipe.warehouse.snapshots import EMPTY_CHECKSUM, Snapshot


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
            for statement in all_ddl(self.dialect, self.wh):
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
        columns = ", ".join(LOADS_COLUMN_NAMES)
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
                    message = first_line(exc).replace(local, snap.original(local))
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
