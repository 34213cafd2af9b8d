"""Vertica load scripts (`trackpipe load --emit-sql vertica`): one `vsql -f` script per stream
and day that replaces the day in one transaction. Generated and parsed in tests, not run against
a Vertica server (none is reachable here).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile

from trackpipe import __version__, storage
from trackpipe.config import STREAMS, Config
from trackpipe.errors import TrackpipeError
from trackpipe.events.schema import OUTPUT_COLUMNS
from trackpipe.warehouse.ddl import LOADS_COLUMN_NAMES, literal, loads_ddl, table_ddl
from trackpipe.warehouse.loader import new_load_id, normalise_output, read_output, selected_streams, valid_dates
from trackpipe.warehouse.snapshots import EMPTY_CHECKSUM, basename, check_files, find_partitions, snapshot

VERTICA_DIR = "vertica"


def vertica_script(
    *,
    stream: str,
    dt: str,
    table: str,
    loads_table: str,
    files: list[str],
    names: list[str],
    row_count: int,
    checksum: str,
    load_id: str,
    output: str,
    generated_by: str,
) -> str:
    """A `vsql -f` script that replaces one day of one stream in one transaction.

    `files` are the Parquet files as Vertica will read them (absolute paths on storage the
    Vertica nodes can read, or s3:// or gs:// URLs); no files means the day is emptied. COPY commits on
    its own unless told NO COMMIT, so the DELETE, COPY and bookkeeping INSERT only become
    visible together at the final COMMIT; ON_ERROR_STOP makes vsql quit at the first error,
    which ends the session and rolls the open transaction back.
    """
    lines = [
        f"-- {generated_by}: load {stream} dt={dt} into {table} ({row_count} rows from {len(files)} file(s)).",
        "-- Generated text, not tested against a Vertica server. Run with: vsql -f <this file>",
        "-- Idempotent: running it again replaces the day with the same rows.",
        "\\set ON_ERROR_STOP on",
        "",
    ]
    statements = table_ddl("vertica", table) + loads_ddl("vertica", loads_table)
    statements.append(f"DELETE FROM {table} WHERE dt = {literal(dt)}::DATE")
    if files:
        statements.append(vertica_copy(table, dt, files))
    values = [
        literal(load_id),
        literal(stream),
        f"{literal(dt)}::DATE",
        literal(json.dumps(names)),
        str(int(row_count)),
        literal(checksum),
        "CURRENT_TIMESTAMP",
        literal(output),
    ]
    statements.append(f"INSERT INTO {loads_table} ({', '.join(LOADS_COLUMN_NAMES)})\nVALUES ({', '.join(values)})")
    statements.append("COMMIT")
    return "\n".join(lines) + ";\n\n".join(statements) + ";\n"


def vertica_copy(table: str, dt: str, files: list[str]) -> str:
    """COPY of a day's Parquet files, the files listed one by one (so exactly the partition's files
    are read) and `dt`, which is only in the folder name, set as a constant column expression.
    The Parquet parser matches the file's columns by position, so the column list is the output
    column order, which is the order the files are written in."""
    columns = ",\n    ".join([*OUTPUT_COLUMNS, f"dt AS {literal(dt)}::DATE"])
    sources = ",\n    ".join(literal(f) for f in files)
    return f"COPY {table} (\n    {columns}\n)\nFROM\n    {sources}\nPARQUET\nABORT ON ERROR\nNO COMMIT"


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
    chosen = selected_streams(streams)
    wanted = valid_dates(dates)
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
        text = vertica_script(
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
        match = _SCRIPT_NAME.match(basename(path))
        if not match or path[: -len(basename(path)) - 1] != sql_dir.rstrip("/"):
            continue  # not ours, or in a subfolder
        stream, day = match.groups()
        if stream in streams and (wanted is None or day in wanted) and (stream, day) not in current:
            stale.append(path)
    return stale
