"""The `trackpipe load` command line: loads a run's partitions into DuckDB or PostgreSQL, or
writes Vertica scripts (docs/warehouse.md), and the example query `make run` prints.
"""

from __future__ import annotations

import argparse
import sys

from trackpipe import storage
from trackpipe.config import STREAMS, Config, load_config
from trackpipe.console import run_command
from trackpipe.dates import selected_days
from trackpipe.errors import ConfigError, TrackpipeError, first_line
from trackpipe.events.times import day_to_date
from trackpipe.storage.object_stores import add_arguments as add_store_arguments
from trackpipe.warehouse.connections import parse_url, redact
from trackpipe.warehouse.loader import DEFAULT_DB_NAME, default_url, load_output, open_warehouse
from trackpipe.warehouse.vertica import VERTICA_DIR, emit_vertica


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
    parser.add_argument("--output", metavar="DIR", required=True, help="The trackpipe output folder to load (local, s3:// or gs://).")
    parser.add_argument(
        "--warehouse",
        metavar="URL",
        help="Where to load: duckdb:///path/to/file.duckdb or postgresql://user:password@host:port/db. "
        f"Default for a local output: duckdb:///<DIR>/{DEFAULT_DB_NAME}; required for an s3:// or gs:// output.",
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
    add_store_arguments(parser)
    return parser


def selected_dates(date: str | None, start: str | None, end: str | None) -> list[str] | None:
    """The days asked for on the command line (None: every partition found); the same rules
    and messages as `trackpipe run`."""
    days = selected_days(date, start, end)
    return None if days is None else [day_to_date(d) for d in sorted(days)]


def main(argv: list[str]) -> int:
    def work() -> str:
        args = _parser().parse_args(argv)
        if args.emit_sql and args.warehouse:
            raise ConfigError("use either --warehouse (load) or --emit-sql (write scripts), not both")
        if args.sql_dir and not args.emit_sql:
            raise ConfigError("--sql-dir goes with --emit-sql")
        config = load_config(args.config)
        dates = selected_dates(args.date, args.start_date, args.end_date)
        from trackpipe.storage.object_stores import configure_from_args

        configure_from_args(args)
        if not args.emit_sql and not args.warehouse:
            default_url(args.output)  # an output in a bucket needs --warehouse: said before any request
        storage.check_buckets([args.output, args.sql_dir])
        if args.emit_sql:
            return emit_vertica(args.output, args.sql_dir, dates=dates, config=config, streams=args.stream)
        return load_output(args.output, args.warehouse, dates=dates, config=config, streams=args.stream)

    return run_command(work)


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
        raise TrackpipeError(f"the example query failed on {redact(url)}: {first_line(exc)} (load the output first)") from None
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
