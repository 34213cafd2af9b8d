"""Taking rows out of a loaded warehouse (DuckDB, PostgreSQL), for `trackpipe forget` (the rows of
retired learners) and `trackpipe expire` (days older than the retention). Loading is not changed.

Every value goes in as a query parameter; table names are the config's (checked identifiers).

forget, per stream table, in ONE transaction:
1. find candidates: rows whose `username` or `user_id` is a retired one, or whose `context` or
   `event` text contains a spelling of a retired username or the digits of a retired id (the
   pre-filter is a superset, run by the database); `is_retired(row)` (the rule in Python)
   decides each candidate;
2. lock each day concerned (PostgreSQL: the same advisory lock a load takes), delete the rows by
   (dt, event_id), and per day record one bookkeeping row (below).
expire, per stream table and day older than the cutoff, in one transaction each: lock the day,
delete its rows, record a bookkeeping row (no files, 0 rows, the checksum of nothing), exactly
as a load empties a day, so a later load does not bring the day back.

The bookkeeping row of a forget (table `warehouse.loads_table`): `load_id` `forget-<id>`, the
stream and day, `row_count` the rows of that day left in the table, and `files`, `checksum`,
`output`: when the day's last load came from the same output partition forget has just rewritten
(same output, same checksum), the partition's new files and checksum, so a later `trackpipe
load` of that output skips the day (the table already holds exactly those rows); otherwise those
of the last load, unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from trackpipe.runtime import faults
from trackpipe.warehouse.connections import Warehouse
from trackpipe.warehouse.snapshots import EMPTY_CHECKSUM

NEEDLES_PER_QUERY = 64
FETCH_ROWS = 10_000


@dataclass
class TableRemoval:
    stream: str
    table: str
    by_day: dict[str, int] = field(default_factory=dict)  # dt -> rows deleted (or that would be)
    missing: bool = False  # the table does not exist (nothing was ever loaded)

    @property
    def rows(self) -> int:
        return sum(self.by_day.values())


def table_exists(wh: Warehouse, table: str) -> bool:
    p = wh.param()
    sql = f"SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND lower(table_name) = lower({p})"
    return bool(wh.execute(sql, (table,)).fetchone()[0])


def _count(wh: Warehouse, cursor) -> int:
    if wh.dialect == "postgres":
        return max(int(cursor.rowcount), 0)
    row = cursor.fetchone()  # DuckDB returns the count as a result row
    return int(row[0]) if row else 0


def _candidates(wh: Warehouse, table: str, names: list[str], ids: list[int], needles: list[str]):
    """(dt, event_id, username, user_id, context, event) of rows the pre-filter lets through."""
    p = wh.param()
    seen = set()
    chunks = [needles[i : i + NEEDLES_PER_QUERY] for i in range(0, len(needles), NEEDLES_PER_QUERY)] or [[]]
    for index, chunk in enumerate(chunks):
        clauses = [f"strpos({column}, {p}) > 0" for _ in chunk for column in ("context", "event")]
        params: list = [v for needle in chunk for v in (needle, needle)]
        if index == 0:
            clauses = [f"username = ANY(CAST({p} AS TEXT[]))", f"user_id = ANY(CAST({p} AS BIGINT[]))", *clauses]
            params = [names, ids, *params]
        sql = f"SELECT CAST(dt AS TEXT), event_id, username, user_id, context, event FROM {table} WHERE " + " OR ".join(clauses)
        cursor = wh.execute(sql, params)
        while True:
            rows = cursor.fetchmany(FETCH_ROWS)
            if not rows:
                break
            for row in rows:
                if (row[0], row[1]) not in seen:
                    seen.add((row[0], row[1]))
                    yield row


def find_retired(wh: Warehouse, stream: str, names: list[str], ids: list[int], needles: list[str], is_retired: Callable) -> dict:
    """{dt: [event_id, ...]} of the table's rows that belong to retired learners."""
    found: dict[str, list[str]] = {}
    table = wh.wh.table_for(stream)
    for dt, event_id, username, user_id, context, event in _candidates(wh, table, names, ids, needles):
        if is_retired(username, user_id, context, event):
            found.setdefault(str(dt)[:10], []).append(event_id)
    return found


def forget_rows(
    wh: Warehouse,
    stream: str,
    names: list[str],
    ids: list[int],
    needles: list[str],
    is_retired: Callable,
    load_id: str,
    output: str,
    partitions: dict | None = None,
    dry_run: bool = False,
) -> TableRemoval:
    """Delete the rows of retired learners from a stream's table in one transaction, with a
    bookkeeping row per day. `partitions`: {dt: (checksum before, checksum after, files after)}
    of the output's partitions of this stream that forget rewrote."""
    table = wh.wh.table_for(stream)
    result = TableRemoval(stream, table)
    if not table_exists(wh, table):
        result.missing = True
        return result
    if dry_run:
        found = find_retired(wh, stream, names, ids, needles, is_retired)
        result.by_day = {dt: len(set(found[dt])) for dt in sorted(found)}
        return result
    wh.ensure_tables()  # the bookkeeping table, should only the stream table exist
    last = wh.last_loads(stream)
    faults.pause("warehouse")
    p = wh.param()
    with wh.transaction():
        found = find_retired(wh, stream, names, ids, needles, is_retired)
        for dt in sorted(found):
            wh.lock_day(table, dt)
        for dt in sorted(found):
            cursor = wh.execute(
                f"DELETE FROM {table} WHERE dt = CAST({p} AS DATE) AND event_id = ANY(CAST({p} AS TEXT[]))", (dt, sorted(set(found[dt])))
            )
            result.by_day[dt] = _count(wh, cursor)
            left = int(wh.execute(f"SELECT count(*) FROM {table} WHERE dt = CAST({p} AS DATE)", (dt,)).fetchone()[0])
            previous = last.get(dt)
            change = (partitions or {}).get(dt)
            if previous is not None and change is not None and previous.output == output and previous.checksum == change[0]:
                files, checksum, source = list(change[2]), change[1], output
            elif previous is not None:
                files, checksum, source = list(previous.files), previous.checksum, previous.output
            else:
                files, checksum, source = [], "", output
            wh.record(load_id, stream, dt, files, left, checksum, source)
    return result


def expire_days(wh: Warehouse, stream: str, before: str, load_id: str, output: str, dry_run: bool = False) -> TableRemoval:
    """Delete the days of a stream's table older than `before` (YYYY-MM-DD), one transaction per
    day, each with a bookkeeping row like a load's emptying of a day."""
    table = wh.wh.table_for(stream)
    result = TableRemoval(stream, table)
    if not table_exists(wh, table):
        result.missing = True
        return result
    p = wh.param()
    sql = f"SELECT CAST(dt AS TEXT), count(*) FROM {table} WHERE dt < CAST({p} AS DATE) GROUP BY dt ORDER BY dt"
    days = [(str(dt)[:10], int(n)) for dt, n in wh.execute(sql, (before,)).fetchall()]
    if dry_run or not days:
        result.by_day = dict(days)
        return result
    wh.ensure_tables()  # the bookkeeping table, should only the stream table exist
    for dt, _rows in days:
        faults.pause("warehouse")
        with wh.transaction():
            wh.lock_day(table, dt)
            result.by_day[dt] = wh.delete_day(table, dt)
            wh.record(load_id, stream, dt, [], 0, EMPTY_CHECKSUM, output)
    return result
