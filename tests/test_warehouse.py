"""`trackpipe load`: real runs of the pipeline on the sample logs, loaded into DuckDB and a real
throwaway PostgreSQL, compared row for row with the partitions as pyarrow reads them.

Tests parametrised over `warehouse_url` run once against DuckDB and once against PostgreSQL
(marked `postgres`). Tests that run the pipeline are marked `slow`; one pipeline run per module
(`sample`) is shared by the read-only checks, tests that change an output work on a copy.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from types import SimpleNamespace

import duckdb
import psycopg
import pyarrow.parquet as pq
import pytest
import sqlglot
from sqlglot import exp

from tests.helpers import REAL_EVENTS, ROOT, manifest, read_rows, run_cli
from trackpipe import warehouse
from trackpipe.config import STREAMS, Config
from trackpipe.events.schema import OUTPUT_COLUMNS
from trackpipe.warehouse import ddl as wsql
from trackpipe.warehouse import plural

DOCS = ROOT / "docs" / "warehouse.md"
TABLES = {"research": "research_events", "internal_bi": "internal_bi_events"}
COLUMNS = [*OUTPUT_COLUMNS, "dt"]
TWO_FILE_DAY = "2014-05-02"  # research partition with two part files in the sample output


# --- fixtures ---------------------------------------------------------------------------------


def _bi_log() -> str:
    """A few internal BI events (name prefix `edx.bi.`), so both streams have partitions."""
    rows = []
    for i, (day, user) in enumerate([("2014-05-02", "alice"), ("2014-05-02", "bob"), ("2016-09-07", "alice"), ("2016-09-07", "carol")]):
        rows.append(
            {
                "event_type": "edx.bi.course.upgrade.sidebarupsell.displayed",
                "event_source": "server",
                "username": user,
                "time": f"{day}T1{i}:00:00.000000+00:00",
                "host": "courses.example.org",
                "context": {"course_id": "course-v1:edX+DemoX+Demo_Course", "user_id": 100 + i, "org_id": "edX"},
                "event": {"n": i},
            }
        )
    return "\n".join(json.dumps(r) for r in rows) + "\n"


def _make_logs(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for path in sorted((REAL_EVENTS / "edx-analytics-pipeline").glob("*.log")):
        shutil.copy(path, folder / path.name)
    shutil.copy(REAL_EVENTS / "event-routing-backends" / "tracking-log" / "tracking.log", folder / "tutor-tracking.log")
    (folder / "bi.log").write_text(_bi_log())
    return folder


def _run(logs: Path, out: Path, *extra: str):
    return run_cli("run", "--input", str(logs / "*"), "--output", str(out), "--no-package", *extra)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """One pipeline run over the real samples (plus a few BI events), shared read-only."""
    base = tmp_path_factory.mktemp("wh-sample")
    logs = _make_logs(base / "logs")
    out = base / "out"
    _run(logs, out)
    assert (out / "warehouse" / "internal_bi").is_dir() and (out / "warehouse" / "research").is_dir()
    return SimpleNamespace(logs=logs, out=out, base=base)


@pytest.fixture(scope="module")
def avro_out(sample):
    out = sample.base / "avro"
    _run(sample.logs, out, "--format", "avro")
    return out


@pytest.fixture(scope="module")
def duck_loaded(sample, tmp_path_factory):
    """The sample output loaded into a DuckDB file, for read-only checks."""
    db = tmp_path_factory.mktemp("wh-duck") / "wh.duckdb"
    url = f"duckdb://{db}"
    report = warehouse.load_output(str(sample.out), url)
    return SimpleNamespace(url=url, db=db, report=report)


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse_url(request, tmp_path):
    if request.param == "duckdb":
        return f"duckdb://{tmp_path / 'wh.duckdb'}"
    return request.getfixturevalue("pg_url")


def _copy_output(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.duckdb", "*.duckdb.wal", "vertica"))
    return dst


# --- helpers ----------------------------------------------------------------------------------


def _load(capsys, *args: str) -> tuple[int, str, str]:
    """`trackpipe load ...` in this process (the CLI entry point, minus interpreter start-up)."""
    code = warehouse.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _normalise(value):
    if isinstance(value, _dt.datetime):
        return value.astimezone(_dt.UTC)
    if isinstance(value, _dt.date):
        return value.isoformat()
    return value


def _query(url: str, sql: str) -> tuple[list[str], list[tuple]]:
    if url.startswith("duckdb://"):
        con = duckdb.connect(url[len("duckdb://") :], read_only=True)
        try:
            cur = con.execute(sql)
            return [d[0] for d in cur.description], cur.fetchall()
        finally:
            con.close()
    with psycopg.connect(url) as conn:
        cur = conn.execute(sql)
        return [d[0] for d in cur.description], cur.fetchall()


def db_rows(url: str, stream: str) -> list[tuple]:
    """Every row of a stream's table, all columns, sorted."""
    _, rows = _query(url, f"SELECT {', '.join(COLUMNS)} FROM {TABLES[stream]}")
    return sorted(tuple(_normalise(v) for v in row) for row in rows)


def file_rows(out: Path, stream: str, fmt: str = "parquet") -> list[tuple]:
    """The same rows as pyarrow (or fastavro) reads them from the partitions."""
    if not (out / "warehouse" / stream).is_dir():
        return []
    table = read_rows(out, stream, fmt=fmt)
    return sorted(tuple(_normalise(r[c]) if c != "dt" else str(r[c]) for c in COLUMNS) for r in table.to_pylist())


def digest(rows: list[tuple]) -> str:
    """Order-independent digest of rows: SHA-256 over the sorted `event_id|copies|time` lines."""
    lines = sorted(f"{r[0]}|{r[COLUMNS.index('copies')]}|{r[COLUMNS.index('time')].isoformat()}" for r in rows)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def assert_same_rows(url: str, out: Path, fmt: str = "parquet") -> None:
    for stream in STREAMS:
        expected, loaded = file_rows(out, stream, fmt), db_rows(url, stream)
        assert len(loaded) == len(expected), stream
        assert digest(loaded) == digest(expected), stream
        assert loaded == expected, stream  # every column, not just the digest


def loads_table(url: str) -> list[tuple]:
    _, rows = _query(url, "SELECT stream, dt, files, row_count, checksum, loaded_at, output, load_id FROM trackpipe_loads")
    return sorted(tuple(_normalise(v) for v in row) for row in rows)


def partitions(out: Path) -> list[tuple[str, str, list[str]]]:
    found = []
    for stream in STREAMS:
        for folder in sorted((out / "warehouse" / stream).glob("dt=*")):
            found.append((stream, folder.name[3:], sorted(p.name for p in folder.iterdir())))
    return found


def _corrupt_page_header(path: Path) -> None:
    """Overwrite the first page header: the footer (schema, row count) stays readable, so the
    file passes the up-front check and fails only while its rows are being inserted."""
    data = bytearray(path.read_bytes())
    data[4:64] = b"\xff" * 60
    path.write_bytes(bytes(data))


# --- loading: same rows as the partitions -----------------------------------------------------


@pytest.mark.slow
def test_load_gives_the_partition_rows(sample, tmp_path, warehouse_url, capsys):
    out = _copy_output(sample.out, tmp_path / "out")
    code, stdout, stderr = _load(capsys, "--output", str(out), "--warehouse", warehouse_url)
    assert code == 0, stderr
    assert_same_rows(warehouse_url, out)
    lines = stdout.strip().splitlines()
    parts = partitions(out)
    assert len(lines) == len(parts) + 1  # one line per (stream, day), then the total
    for (stream, day, _), line in zip(sorted(parts, key=lambda p: (STREAMS.index(p[0]), p[1])), lines):
        rows = manifest(out)["rows_written"][stream][day]
        assert line == f"{stream} dt={day}: loaded {plural(rows, 'row')}"
    assert lines[-1].startswith(f"total: {len(parts)} loaded ({plural(manifest(out)['rows_written_total'], 'row')}), 0 skipped")
    if warehouse_url.startswith("postgresql://"):
        assert "***" in lines[-1] and warehouse_url.split("@")[0].split(":")[-1] not in lines[-1]  # no password
    # bookkeeping: one row per partition with its files, row count and checksum
    recorded = {(s, d): (files, n, c) for s, d, files, n, c, *_ in loads_table(warehouse_url)}
    for stream, day, names in parts:
        files, n, checksum = recorded[(stream, day)]
        assert list(files) == names and n == manifest(out)["rows_written"][stream][day]
        listing = "".join(
            f"{hashlib.sha256((out / 'warehouse' / stream / f'dt={day}' / f).read_bytes()).hexdigest()}  {f}\n" for f in names
        )
        assert checksum == hashlib.sha256(listing.encode()).hexdigest()


@pytest.mark.slow
def test_column_types(duck_loaded):
    _, rows = _query(
        duck_loaded.url,
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'research_events' ORDER BY ordinal_position",
    )
    types = dict(rows)
    assert list(types) == COLUMNS
    assert types["time"] == types["received_at"] == "TIMESTAMP WITH TIME ZONE"
    assert (types["user_id"], types["copies"], types["dt"], types["event_id"]) == ("BIGINT", "INTEGER", "DATE", "VARCHAR")


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_column_types_and_example_queries(sample, duck_loaded, pg_url):
    """Same types in PostgreSQL, and the docs' example queries give the same answers there."""
    warehouse.load_output(str(sample.out), pg_url)
    _, rows = _query(
        pg_url,
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'research_events' ORDER BY ordinal_position",
    )
    types = dict(rows)
    assert list(types) == COLUMNS
    assert types["time"] == types["received_at"] == "timestamp with time zone"
    assert (types["user_id"], types["copies"], types["dt"], types["event"]) == ("bigint", "integer", "date", "text")
    for name, sql in docs_queries().items():
        pg_columns, pg_result = _query(pg_url, sql)
        duck_columns, duck_result = _query(duck_loaded.url, sql)
        assert pg_columns == duck_columns, name
        assert [tuple(_normalise(float(v) if hasattr(v, "as_tuple") else v) for v in r) for r in pg_result] == [
            tuple(_normalise(v) for v in r) for r in duck_result
        ], name


@pytest.mark.slow
def test_default_warehouse_is_a_duckdb_file_in_the_output_and_dead_work_folders_are_cleaned(sample, tmp_path, capsys):
    out = _copy_output(sample.out, tmp_path / "out")
    (out / "_tmp" / "20200101T000000Z-dead00").mkdir(parents=True)
    (out / "_tmp" / "20200101T000000Z-dead00" / "half-written.parquet").write_bytes(b"x")
    code, stdout, stderr = _load(capsys, "--output", str(out))
    assert code == 0, stderr
    assert (out / "warehouse.duckdb").is_file()
    assert f"duckdb://{out / 'warehouse.duckdb'}" in stdout
    assert not (out / "_tmp").exists()  # recover(output) ran first
    assert not (out / "_lock.json").exists()  # and the lock was released
    assert_same_rows(f"duckdb://{out / 'warehouse.duckdb'}", out)


@pytest.mark.slow
def test_a_half_published_run_is_finished_before_loading(sample, tmp_path, capsys):
    """A run killed in the middle of publishing leaves some partitions replaced, a journal and
    its lock: the load takes over the dead run's lock, replays the journal (`recover`), and loads
    the complete run, never the half-published one."""
    out = tmp_path / "out"
    env = {**os.environ, "TRACKPIPE_TEST_PAUSE": "publish=0.2"}  # trackpipe.runtime.faults: 0.2 s per publish action
    command = [sys.executable, "-m", "trackpipe.cli", "run", "--input", str(sample.logs / "*"), "--output", str(out), "--no-package"]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (list(out.glob("_tmp/*/_publish.json")) and list(out.glob("warehouse/*/dt=*"))):
            assert proc.poll() is None, "the run ended before it was caught publishing"
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait()
    assert (out / "_lock.json").exists() and not (out / "_manifest.json").exists()
    assert len(partitions(out)) < len(partitions(sample.out))
    url = f"duckdb://{tmp_path / 'wh.duckdb'}"
    code, stdout, stderr = _load(capsys, "--output", str(out), "--warehouse", url)
    assert code == 0, stderr
    assert partitions(out) == partitions(sample.out) and (out / "_manifest.json").exists()
    assert_same_rows(url, sample.out)
    assert not (out / "_lock.json").exists()


# --- reload, skip, rerun ----------------------------------------------------------------------


@pytest.mark.slow
def test_reloading_a_day_never_doubles_it(sample, tmp_path, warehouse_url, capsys):
    out = _copy_output(sample.out, tmp_path / "out")
    assert _load(capsys, "--output", str(out), "--warehouse", warehouse_url)[0] == 0
    before = {s: db_rows(warehouse_url, s) for s in STREAMS}
    # Forget the bookkeeping of one day so the next load really reloads it.
    _execute(warehouse_url, f"DELETE FROM trackpipe_loads WHERE dt = DATE '{TWO_FILE_DAY}' AND stream = 'research'")
    code, stdout, _ = _load(capsys, "--output", str(out), "--warehouse", warehouse_url, "--date", TWO_FILE_DAY)
    rows = manifest(out)["rows_written"]["research"][TWO_FILE_DAY]
    assert code == 0
    assert f"research dt={TWO_FILE_DAY}: loaded {rows:,} rows, replacing {rows:,}" in stdout
    assert f"internal_bi dt={TWO_FILE_DAY}: skipped (unchanged since the last load)" in stdout
    assert {s: db_rows(warehouse_url, s) for s in STREAMS} == before


def _execute(url: str, sql: str) -> None:
    if url.startswith("duckdb://"):
        con = duckdb.connect(url[len("duckdb://") :])
        try:
            con.execute(sql)
        finally:
            con.close()
        return
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


@pytest.mark.slow
def test_unchanged_partitions_are_skipped(sample, tmp_path, warehouse_url, capsys):
    out = _copy_output(sample.out, tmp_path / "out")
    assert _load(capsys, "--output", str(out), "--warehouse", warehouse_url)[0] == 0
    bookkeeping = loads_table(warehouse_url)
    code, stdout, _ = _load(capsys, "--output", str(out), "--warehouse", warehouse_url)
    assert code == 0
    lines = stdout.strip().splitlines()
    assert all(line.endswith(": skipped (unchanged since the last load)") for line in lines[:-1])
    assert len(lines) - 1 == len(partitions(out))
    assert lines[-1].startswith(f"total: 0 loaded (0 rows), {len(partitions(out))} skipped (unchanged), 0 emptied")
    assert loads_table(warehouse_url) == bookkeeping  # no new bookkeeping rows, loaded_at unchanged
    assert_same_rows(warehouse_url, out)


@pytest.mark.slow
def test_rerun_on_changed_input_replaces_rows_and_empties_days_that_lost_them(tmp_path, warehouse_url, capsys):
    logs = _make_logs(tmp_path / "logs")
    out = tmp_path / "out"
    _run(logs, out)
    assert _load(capsys, "--output", str(out), "--warehouse", warehouse_url)[0] == 0
    old_rows = manifest(out)["rows_written"]["research"]

    # 1. One more event on TWO_FILE_DAY: that partition changes, the others do not.
    extra = {
        "event_type": "edx.course.enrollment.activated",
        "time": f"{TWO_FILE_DAY}T23:00:00+00:00",
        "username": "late",
        "context": {"course_id": "course-v1:edX+DemoX+Demo_Course"},
        "event": {},
    }
    (logs / "late.log").write_text(json.dumps(extra) + "\n")
    _run(logs, out, "--date", TWO_FILE_DAY)
    code, stdout, _ = _load(capsys, "--output", str(out), "--warehouse", warehouse_url)
    assert code == 0
    assert f"research dt={TWO_FILE_DAY}: loaded {old_rows[TWO_FILE_DAY] + 1:,} rows, replacing {old_rows[TWO_FILE_DAY]:,}" in stdout
    assert f"total: 1 loaded ({old_rows[TWO_FILE_DAY] + 1:,} rows), {len(partitions(out)) - 1} skipped" in stdout
    assert_same_rows(warehouse_url, out)
    assert "late" in {r[COLUMNS.index("username")] for r in db_rows(warehouse_url, "research")}

    # 2. The tutor log was the only source of 2023-05-23: a rerun of that day removes the
    #    partition, and the next load empties the day in the warehouse.
    (logs / "tutor-tracking.log").unlink()
    _run(logs, out, "--date", "2023-05-23")
    assert not (out / "warehouse" / "research" / "dt=2023-05-23").exists()
    code, stdout, _ = _load(capsys, "--output", str(out), "--warehouse", warehouse_url)
    assert code == 0
    assert f"research dt=2023-05-23: emptied (partition gone from the output; {plural(old_rows['2023-05-23'], 'row')} deleted)" in stdout
    assert "1 emptied" in stdout.splitlines()[-1]
    assert_same_rows(warehouse_url, out)
    latest = max((r for r in loads_table(warehouse_url) if r[:2] == ("research", "2023-05-23")), key=lambda r: r[5])
    assert (list(latest[2]), latest[3], latest[4]) == ([], 0, hashlib.sha256(b"").hexdigest())

    # 3. Nothing changed since: all skipped, the emptied day is not reported again.
    code, stdout, _ = _load(capsys, "--output", str(out), "--warehouse", warehouse_url)
    assert "2023-05-23" not in stdout and "0 loaded" in stdout and "0 emptied" in stdout


@pytest.mark.slow
def test_days_loaded_from_another_output_are_not_emptied(sample, tmp_path, capsys):
    """Emptying needs the day's last load to come from this same output: loading a second output
    (e.g. a one-day rerun elsewhere) into the same warehouse leaves the other days alone."""
    url = f"duckdb://{tmp_path / 'wh.duckdb'}"
    assert _load(capsys, "--output", str(sample.out), "--warehouse", url)[0] == 0
    other = tmp_path / "other"
    _run(sample.logs, other, "--date", TWO_FILE_DAY)
    code, stdout, _ = _load(capsys, "--output", str(other), "--warehouse", url)
    assert code == 0 and "emptied" not in stdout.replace("0 emptied", "")
    assert_same_rows(url, sample.out)


# --- failures ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_failing_load_keeps_the_previous_rows(sample, tmp_path, warehouse_url, capsys):
    out = _copy_output(sample.out, tmp_path / "out")
    assert _load(capsys, "--output", str(out), "--warehouse", warehouse_url)[0] == 0
    before = {s: db_rows(warehouse_url, s) for s in STREAMS}
    bookkeeping = loads_table(warehouse_url)
    files = sorted((out / "warehouse" / "research" / f"dt={TWO_FILE_DAY}").glob("part-*.parquet"))
    assert len(files) == 2
    last = files[-1]
    original = last.read_bytes()

    # Garbage instead of Parquet: refused before anything is touched.
    last.write_bytes(b"this is not a parquet file\n" * 100)
    code, stdout, stderr = _load(capsys, "--output", str(out), "--warehouse", warehouse_url)
    assert code == 1 and stdout == ""
    assert stderr.count("\n") == 1 and stderr.startswith("trackpipe: error: ")
    assert str(last) in stderr and "not a readable Parquet file" in stderr
    assert {s: db_rows(warehouse_url, s) for s in STREAMS} == before
    assert loads_table(warehouse_url) == bookkeeping

    # Readable footer, broken pages: fails inside the day's transaction, after the DELETE and
    # after the first file's rows went in. The rollback leaves the previous rows.
    last.write_bytes(original)
    _corrupt_page_header(last)
    code, stdout, stderr = _load(capsys, "--output", str(out), "--warehouse", warehouse_url)
    assert code == 1
    assert stderr.count("\n") == 1 and stderr.startswith("trackpipe: error: cannot load ")
    assert str(last) in stderr and f"research dt={TWO_FILE_DAY} was left as it was" in stderr
    assert {s: db_rows(warehouse_url, s) for s in STREAMS} == before
    assert loads_table(warehouse_url) == bookkeeping

    # Repaired: the next load is a no-op (same bytes as the loaded partition).
    last.write_bytes(original)
    code, stdout, _ = _load(capsys, "--output", str(out), "--warehouse", warehouse_url)
    assert code == 0 and stdout.splitlines()[-1].startswith("total: 0 loaded (0 rows)")


def test_bad_arguments_fail_with_one_line(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "_manifest.json").write_text("{}")
    cases = [
        (["--output", str(out), "--warehouse", "mysql://u:secret@h/db"], "unsupported warehouse URL"),
        (["--output", str(out), "--warehouse", "duckdb:///x.duckdb", "--emit-sql", "vertica"], "either --warehouse"),
        (["--output", str(out), "--date", "2014-13-01"], "dates must be YYYY-MM-DD"),
        (["--output", str(out), "--start-date", "2014-05-03", "--end-date", "2014-05-01"], "before --start-date"),
        (["--output", str(out), "--stream", "nope"], "invalid choice"),
        (["--output", str(out), "--emit-sql", "oracle"], "invalid choice"),
        (["--output", str(tmp_path / "missing")], "is not a trackpipe output"),
        (["--warehouse", "duckdb:///x.duckdb"], "--output"),
        (["--output", "s3://bucket/out"], "--warehouse is required for an s3:// output"),
    ]
    for args, message in cases:
        code, stdout, stderr = _load(capsys, *args)
        assert code == 1, args
        assert stderr.startswith("trackpipe: error: ") and stderr.count("\n") == 1, stderr
        assert message in stderr, (args, stderr)
        assert "secret" not in stderr
    assert not (tmp_path / "missing").exists()  # no default DuckDB file created for a wrong --output


def test_the_cli_exit_code_and_help():
    result = run_cli("load", "--output", "/nonexistent/out", check=False)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "is not a trackpipe output" in result.stderr
    text = run_cli("load", "--help").stdout
    for option in ("--output", "--warehouse", "--date", "--start-date", "--end-date", "--stream", "--config", "--emit-sql", "--sql-dir"):
        assert option in text
    assert "duckdb:///" in text and "postgresql://" in text


@pytest.mark.slow
def test_a_locked_output_is_refused(sample, tmp_path, capsys):
    out = _copy_output(sample.out, tmp_path / "out")
    owner = {
        "run_id": "20260101T000000Z-abcdef",
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started_at": "2026-01-01T00:00:00+00:00",
    }
    (out / "_lock.json").write_text(json.dumps(owner))
    code, _, stderr = _load(capsys, "--output", str(out), "--warehouse", f"duckdb://{tmp_path / 'wh.duckdb'}")
    assert code == 1 and "in use by run 20260101T000000Z-abcdef" in stderr
    assert (out / "_lock.json").exists()  # someone else's lock is left alone


# --- formats and filters ----------------------------------------------------------------------


@pytest.mark.slow
def test_avro_output_loads_the_same_rows(sample, avro_out, warehouse_url, capsys):
    code, _, stderr = _load(capsys, "--output", str(avro_out), "--warehouse", warehouse_url)
    assert code == 0, stderr
    assert_same_rows(warehouse_url, avro_out, fmt="avro")
    for stream in STREAMS:  # and they are the Parquet output's rows
        assert db_rows(warehouse_url, stream) == file_rows(sample.out, stream)


@pytest.mark.slow
def test_stream_and_date_filters(sample, tmp_path, capsys):
    url = f"duckdb://{tmp_path / 'wh.duckdb'}"
    code, stdout, _ = _load(capsys, "--output", str(sample.out), "--warehouse", url, "--stream", "internal_bi")
    assert code == 0
    assert db_rows(url, "research") == [] and db_rows(url, "internal_bi") == file_rows(sample.out, "internal_bi")
    assert all(line.startswith("internal_bi ") for line in stdout.splitlines()[:-1])

    code, stdout, _ = _load(capsys, "--output", str(sample.out), "--warehouse", url, "--stream", "research", "--date", TWO_FILE_DAY)
    assert code == 0
    assert {r[-1] for r in db_rows(url, "research")} == {TWO_FILE_DAY}
    assert (
        stdout.splitlines()[0]
        == f"research dt={TWO_FILE_DAY}: loaded {manifest(sample.out)['rows_written']['research'][TWO_FILE_DAY]:,} rows"
    )

    code, stdout, _ = _load(
        capsys, "--output", str(sample.out), "--warehouse", url, "--start-date", "2014-01-01", "--end-date", "2014-12-31"
    )
    assert code == 0
    days_2014 = {d for s, d, _ in partitions(sample.out) if s == "research" and d.startswith("2014-")}
    assert {r[-1] for r in db_rows(url, "research")} == days_2014
    assert f"research dt={TWO_FILE_DAY}: skipped (unchanged since the last load)" in stdout
    assert "internal_bi dt=2014-05-02: skipped" in stdout  # loaded by the first, stream-only load

    code, stdout, _ = _load(capsys, "--output", str(sample.out), "--warehouse", url, "--date", "1999-01-01")
    assert code == 0 and stdout.startswith("total: nothing to load")


# --- Vertica scripts --------------------------------------------------------------------------


def _statements(script: str) -> list[str]:
    body = "\n".join(line for line in script.splitlines() if not line.startswith("--") and not line.startswith("\\"))
    return [s.strip() for s in re.split(r";\s*(?:\n|$)", body) if s.strip()]


_COPY = re.compile(r"^COPY (\w+) \((.*?)\)\s*FROM\s+(.*?)\s+PARQUET\s+ABORT ON ERROR\s+NO COMMIT$", re.DOTALL)
_PARTITION_CLAUSE = "PARTITION BY dt GROUP BY CALENDAR_HIERARCHY_DAY(dt, 2, 2)"


@pytest.mark.slow
def test_vertica_scripts(sample, tmp_path, capsys):
    """The scripts cannot run here (no Vertica server). What is checked: one script per stream
    and day; its COPY names exactly that partition's files and sets `dt` to that day; the row
    count and checksum in its bookkeeping INSERT are the partition's.

    Parsing: sqlglot has no Vertica dialect. DELETE, INSERT and COMMIT parse with sqlglot's
    postgres dialect into real statement trees (not the `Command` fallback). The CREATE TABLE
    statements parse too once the two Vertica-only parts are taken out, which the test checks
    by exact text first: the `PARTITION BY ... CALENDAR_HIERARCHY_DAY` clause and the
    `LONG VARCHAR(n)` type (replaced by VARCHAR(n) for parsing). sqlglot "parses" Vertica's COPY
    into a garbled tree (it reads `PARQUET ABORT` as one option), so the COPY is checked with a
    regular expression instead: table, column list, file list, PARQUET, ABORT ON ERROR, NO COMMIT.
    """
    out = _copy_output(sample.out, tmp_path / "out")
    code, stdout, stderr = _load(capsys, "--emit-sql", "vertica", "--output", str(out))
    assert code == 0, stderr
    assert "not tested against a Vertica server" in stdout
    parts = partitions(out)
    scripts = sorted((out / "vertica").glob("*.sql"))
    assert [p.name for p in scripts] == sorted(f"{s}-{d}.sql" for s, d, _ in parts)
    for stream, day, names in parts:
        script = (out / "vertica" / f"{stream}-{day}.sql").read_text()
        assert "\\set ON_ERROR_STOP on" in script.splitlines()
        statements = _statements(script)
        kinds = [s.split()[0] for s in statements]
        assert kinds == ["CREATE", "CREATE", "DELETE", "COPY", "INSERT", "COMMIT"]
        create_table, create_loads, delete, copy, insert, commit = statements
        table = TABLES[stream]

        assert create_table.endswith(_PARTITION_CLAUSE)
        assert re.search(r"\bevent\s+LONG VARCHAR\(\d+\)", create_table) and re.search(r"\bcontext\s+LONG VARCHAR\(\d+\)", create_table)
        for ddl, expected in ((create_table, COLUMNS), (create_loads, wsql.LOADS_COLUMN_NAMES)):
            parsed = sqlglot.parse_one(ddl.removesuffix(_PARTITION_CLAUSE).replace("LONG VARCHAR(", "VARCHAR("), read="postgres")
            assert isinstance(parsed, exp.Create) and parsed.args.get("exists")
            assert [c.name for c in parsed.find_all(exp.ColumnDef)] == expected
        types = {
            c.name: c.args["kind"].sql("postgres")
            for c in sqlglot.parse_one(
                create_table.removesuffix(_PARTITION_CLAUSE).replace("LONG VARCHAR(", "VARCHAR("), read="postgres"
            ).find_all(exp.ColumnDef)
        }
        assert types["time"] == "TIMESTAMPTZ" and types["user_id"] == "BIGINT" and types["copies"] == "INT" and types["dt"] == "DATE"

        parsed_delete = sqlglot.parse_one(delete, read="postgres")
        assert isinstance(parsed_delete, exp.Delete) and parsed_delete.this.name == table
        assert parsed_delete.args["where"].sql("postgres") == f"WHERE dt = CAST('{day}' AS DATE)"

        match = _COPY.match(copy)
        assert match, copy
        assert match.group(1) == table
        columns = [c.strip() for c in match.group(2).split(",")]
        assert columns == [*OUTPUT_COLUMNS, f"dt AS '{day}'::DATE"]
        sources = re.findall(r"'((?:[^']|'')*)'", match.group(3))
        assert sources == [str(out / "warehouse" / stream / f"dt={day}" / name) for name in names]
        assert re.fullmatch(r"(\s*'[^']*'\s*,?)+", match.group(3))  # nothing but the quoted file list
        assert sqlglot.parse_one(f"SELECT '{day}'::DATE", read="postgres").expressions[0].sql("postgres") == f"CAST('{day}' AS DATE)"

        parsed_insert = sqlglot.parse_one(insert, read="postgres")
        assert isinstance(parsed_insert, exp.Insert)
        assert [c.name for c in parsed_insert.this.expressions] == wsql.LOADS_COLUMN_NAMES
        values = [v for v in parsed_insert.expression.expressions[0].expressions]
        row_count = sum(pq.ParquetFile(out / "warehouse" / stream / f"dt={day}" / n).metadata.num_rows for n in names)
        assert values[4].sql() == str(row_count) == str(manifest(out)["rows_written"][stream][day])
        assert json.loads(values[3].name) == names
        listing = "".join(
            f"{hashlib.sha256((out / 'warehouse' / stream / f'dt={day}' / n).read_bytes()).hexdigest()}  {n}\n" for n in names
        )
        assert values[5].name == hashlib.sha256(listing.encode()).hexdigest()

        assert isinstance(sqlglot.parse_one(commit, read="postgres"), exp.Commit)


@pytest.mark.slow
def test_vertica_scripts_for_requested_days_without_rows_empty_them(sample, tmp_path, capsys):
    sql_dir = tmp_path / "sql"
    code, stdout, _ = _load(capsys, "--emit-sql", "vertica", "--output", str(sample.out), "--sql-dir", str(sql_dir), "--date", "2015-09-14")
    assert code == 0
    assert sorted(p.name for p in sql_dir.iterdir()) == ["internal_bi-2015-09-14.sql", "research-2015-09-14.sql"]
    empty = _statements((sql_dir / "internal_bi-2015-09-14.sql").read_text())
    assert [s.split()[0] for s in empty] == ["CREATE", "CREATE", "DELETE", "INSERT", "COMMIT"]
    assert "internal_bi dt=2015-09-14" in stdout and "empties the day" in stdout
    assert not (sample.out / "vertica").exists()


@pytest.mark.slow
def test_vertica_script_folder_mirrors_the_selection(sample, tmp_path, capsys):
    """Scripts of an earlier emit for days that have no partition now are removed (within the
    selected streams and days); other files are left alone."""
    sql_dir = tmp_path / "sql"
    sql_dir.mkdir()
    for name in ("research-1999-01-01.sql", "research-1999-01-02.sql", "notes.txt"):
        (sql_dir / name).write_text("-- old\n")
    code, stdout, _ = _load(capsys, "--emit-sql", "vertica", "--output", str(sample.out), "--sql-dir", str(sql_dir), "--date", "1999-01-02")
    assert code == 0 and (sql_dir / "research-1999-01-01.sql").exists()  # outside the selection
    assert (sql_dir / "research-1999-01-02.sql").read_text() != "-- old\n"  # rewritten: empties the day
    code, stdout, _ = _load(capsys, "--emit-sql", "vertica", "--output", str(sample.out), "--sql-dir", str(sql_dir))
    assert code == 0 and "3 stale script(s) removed" in stdout  # the two old ones and internal_bi-1999-01-02.sql
    assert sorted(p.name for p in sql_dir.iterdir()) == sorted(["notes.txt", *(f"{s}-{d}.sql" for s, d, _ in partitions(sample.out))])


@pytest.mark.slow
def test_vertica_scripts_need_parquet(avro_out, tmp_path, capsys):
    code, _, stderr = _load(capsys, "--emit-sql", "vertica", "--output", str(avro_out), "--sql-dir", str(tmp_path / "sql"))
    assert code == 1 and "Parquet only" in stderr and ".avro" in stderr


# --- end to end, examples, docs ---------------------------------------------------------------


@pytest.mark.slow
def test_run_with_load_end_to_end(tmp_path):
    logs = _make_logs(tmp_path / "logs")
    out, db = tmp_path / "out", tmp_path / "wh" / "events.duckdb"
    result = _run(logs, out, "--load", f"duckdb://{db}")
    assert f"total: {len(partitions(out))} loaded ({manifest(out)['rows_written_total']:,} rows)" in result.stdout
    assert_same_rows(f"duckdb://{db}", out)
    again = _run(logs, out, "--load", f"duckdb://{db}")  # identical bytes on a rerun: nothing to reload
    assert f"total: 0 loaded (0 rows), {len(partitions(out))} skipped" in again.stdout


def docs_queries() -> dict[str, str]:
    text = DOCS.read_text()
    found = dict(re.findall(r"<!-- example-query: ([\w-]+) -->\s*```sql\n(.*?)```", text, re.DOTALL))
    assert set(found) == {"daily-active-learners", "events-per-type", "duplicate-rate"}
    return found


@pytest.mark.slow
def test_example_queries_from_the_docs(sample, duck_loaded):
    queries = docs_queries()
    research = [dict(zip(COLUMNS, r)) for r in file_rows(sample.out, "research")]
    everything = research + [dict(zip(COLUMNS, r)) for r in file_rows(sample.out, "internal_bi")]

    _, rows = _query(duck_loaded.url, queries["daily-active-learners"])
    learners, events = defaultdict(set), Counter()
    for r in research:
        if r["course_id"] is not None and r["username"] != "":
            learners[(r["dt"], r["course_id"])].add(r["username"])
            events[(r["dt"], r["course_id"])] += 1
    expected = sorted(((d, c, len(u), events[(d, c)]) for (d, c), u in learners.items()), key=lambda t: (-t[2], t[0], t[1]))[:10]
    assert [tuple(_normalise(v) for v in r) for r in rows] == expected
    assert 1 <= rows[0][2] <= len({r["username"] for r in research})

    _, rows = _query(duck_loaded.url, queries["events-per-type"])
    counts, lines = Counter(), Counter()
    for r in research:
        if not r["name"].startswith("/"):
            counts[(r["name"], r["event_source"])] += 1
            lines[(r["name"], r["event_source"])] += r["copies"]
    expected = sorted(((n, s, c, lines[(n, s)]) for (n, s), c in counts.items()), key=lambda t: (-t[2], t[0], t[1]))[:10]
    assert [tuple(r) for r in rows] == expected
    assert rows[0][0] == "problem_check"

    _, rows = _query(duck_loaded.url, queries["duplicate-rate"])
    per_source = defaultdict(lambda: [0, 0])
    for r in everything:
        per_source[r["event_source"]][0] += r["copies"]
        per_source[r["event_source"]][1] += r["copies"] - 1
    assert [(s, n, d) for s, n, d, _ in rows] == sorted((s, n, d) for s, (n, d) in per_source.items())
    for _, n, d, pct in rows:
        assert pct == pytest.approx(round(100.0 * d / n, 2)) and 0 <= pct < 100
    assert sum(d for _, _, d, _ in rows) == manifest(sample.out)["duplicates_removed"]["total"]


@pytest.mark.slow
def test_example_query_for_make_run(sample, duck_loaded):
    text = warehouse.example_query(duck_loaded.url, Config())
    sql, table = text.split(";\n\n", 1)
    assert sql == warehouse.example_query_sql(Config())
    lines = table.splitlines()
    assert [c.strip() for c in lines[0].split("|")] == ["stream", "dt", "events", "input_lines"]
    assert lines[-1] == "(10 rows)" and len(lines) == 13
    stream, day, events, _ = (c.strip() for c in lines[2].split("|"))
    assert day == max(d for _, d, _ in partitions(sample.out))
    assert int(events) == manifest(sample.out)["rows_written"][stream][day]


def test_ddl_comes_from_the_schema_and_is_in_the_docs():
    for dialect in wsql.DIALECTS:
        assert [name for name, _ in wsql.table_columns(dialect)] == COLUMNS
    ddl = warehouse.describe_ddl()
    assert ddl in DOCS.read_text(), "docs/warehouse.md: paste the output of trackpipe.warehouse.describe_ddl()"
    con = duckdb.connect(":memory:")  # the DuckDB text runs as it is
    for statement in wsql.all_ddl("duckdb", Config().warehouse):
        con.execute(statement)
    assert len(con.execute("SHOW TABLES").fetchall()) == 3
