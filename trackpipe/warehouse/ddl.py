"""SQL text for `trackpipe load`: table DDL per dialect, generated from the output schema
(trackpipe.events.schema.COLUMNS). No database access here.

Dialects: `duckdb`, `postgres`, `vertica`. Each warehouse table holds the output columns in
output order plus `dt DATE` (the partition's day, last, as Vertica's Parquet loader wants the
columns in file order). The bookkeeping table (config `warehouse.loads_table`) gets one row per
load or emptying of a (stream, day).
"""

from __future__ import annotations

import pyarrow as pa

from trackpipe.config import Config
from trackpipe.events.schema import COLUMNS, TS

DIALECTS = ("duckdb", "postgres", "vertica")


_TYPES = {
    "duckdb": {pa.string(): "VARCHAR", TS: "TIMESTAMPTZ", pa.int64(): "BIGINT", pa.int32(): "INTEGER"},
    "postgres": {pa.string(): "TEXT", TS: "TIMESTAMPTZ", pa.int64(): "BIGINT", pa.int32(): "INTEGER"},
    # Vertica: VARCHAR needs a width (default 80 bytes, at most 65000); the JSON payloads can be
    # far longer (a line may be 16 MiB), so they are LONG VARCHAR. Widths are in bytes; Vertica
    # stores strings at their actual length, the declared width is only an upper bound.
    "vertica": {pa.string(): "VARCHAR(65000)", TS: "TIMESTAMP WITH TIME ZONE", pa.int64(): "BIGINT", pa.int32(): "INTEGER"},
}


_VERTICA_LONG_TEXT = {"event": "LONG VARCHAR(16777216)", "context": "LONG VARCHAR(16777216)"}


_VERTICA_NARROW = {"event_id": "VARCHAR(64)", "event_source": "VARCHAR(255)"}


LOADS_COLUMNS = [
    ("load_id", "VARCHAR", "TEXT", "VARCHAR(128)"),
    ("stream", "VARCHAR", "TEXT", "VARCHAR(32)"),
    ("dt", "DATE", "DATE", "DATE"),
    ("files", "VARCHAR[]", "TEXT[]", "VARCHAR(65000)"),
    ("row_count", "BIGINT", "BIGINT", "BIGINT"),
    ("checksum", "VARCHAR", "TEXT", "VARCHAR(64)"),
    ("loaded_at", "TIMESTAMPTZ", "TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE"),
    ("output", "VARCHAR", "TEXT", "VARCHAR(65000)"),
]


LOADS_COLUMN_NAMES = [c[0] for c in LOADS_COLUMNS]


def _check_dialect(dialect: str) -> None:
    if dialect not in DIALECTS:
        raise ValueError(f"unknown SQL dialect {dialect!r} (known: {', '.join(DIALECTS)})")


def column_type(dialect: str, name: str, arrow_type: pa.DataType) -> str:
    _check_dialect(dialect)
    if dialect == "vertica":
        if name in _VERTICA_LONG_TEXT:
            return _VERTICA_LONG_TEXT[name]
        if name in _VERTICA_NARROW:
            return _VERTICA_NARROW[name]
    try:
        return _TYPES[dialect][arrow_type]
    except KeyError:
        raise ValueError(f"no {dialect} type for column {name} ({arrow_type})") from None


def table_columns(dialect: str) -> list[tuple[str, str]]:
    """(name, SQL type) of a stream table: the output columns, then `dt`."""
    return [(name, column_type(dialect, name, typ)) for name, typ, _ in COLUMNS] + [("dt", "DATE NOT NULL")]


def _create(table: str, columns: list[tuple[str, str]], suffix: str = "") -> str:
    width = max(len(name) for name, _ in columns)
    body = ",\n".join(f"    {name.ljust(width)} {typ}" for name, typ in columns)
    return f"CREATE TABLE IF NOT EXISTS {table} (\n{body}\n){suffix}"


def table_ddl(dialect: str, table: str) -> list[str]:
    """Statements creating a stream table when missing (and its day index where useful)."""
    _check_dialect(dialect)
    columns = table_columns(dialect)
    if dialect == "vertica":
        # One partition per day keeps the daily DELETE cheap; hierarchical grouping merges old
        # days into month and year groups so the table stays under Vertica's ROS container limit.
        return [_create(table, columns, "\nPARTITION BY dt GROUP BY CALENDAR_HIERARCHY_DAY(dt, 2, 2)")]
    statements = [_create(table, columns)]
    if dialect == "postgres":
        # The load deletes a day before inserting it: without an index that is a full scan.
        statements.append(f"CREATE INDEX IF NOT EXISTS {table}_dt_idx ON {table} (dt)")
    return statements


def loads_ddl(dialect: str, table: str) -> list[str]:
    """Statements creating the bookkeeping table when missing."""
    _check_dialect(dialect)
    index = DIALECTS.index(dialect) + 1
    statements = [_create(table, [(c[0], c[index]) for c in LOADS_COLUMNS])]
    if dialect == "postgres":
        statements.append(f"CREATE INDEX IF NOT EXISTS {table}_stream_dt_idx ON {table} (stream, dt)")
    return statements


def all_ddl(dialect: str, warehouse) -> list[str]:
    """Every CREATE statement for a WarehouseConfig."""
    out = []
    for table in (warehouse.research_table, warehouse.internal_bi_table):
        out.extend(table_ddl(dialect, table))
    out.extend(loads_ddl(dialect, warehouse.loads_table))
    return out


def literal(value: str) -> str:
    """A SQL string literal (standard quoting: a quote is doubled)."""
    return "'" + value.replace("'", "''") + "'"


def describe_ddl(config: Config | None = None) -> str:
    """The DDL per dialect as pasted in docs/warehouse.md: the research table (the internal_bi
    table is the same with its own name) and the bookkeeping table."""
    wh = (config or Config()).warehouse
    parts = []
    for dialect in DIALECTS:
        statements = table_ddl(dialect, wh.research_table) + loads_ddl(dialect, wh.loads_table)
        parts.append(f"-- {dialect}\n" + ";\n\n".join(statements) + ";")
    return "\n\n".join(parts)
