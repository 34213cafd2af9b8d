"""Tier 3: whole runs of `trackpipe run` on files, outputs read back and checked."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.helpers import REAL_EVENTS, files_under, manifest, read_jsonl_gz, read_rows, run_cli
from trackpipe.events.schema import OUTPUT_COLUMNS

pytestmark = pytest.mark.slow


def _run(logs: Path, out: Path, *extra: str, check: bool = True):
    return run_cli("run", "--input", str(logs / "*"), "--output", str(out), *extra, check=check)


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """One run over the real samples, shared by the read-only checks below."""
    base = tmp_path_factory.mktemp("sample")
    logs = base / "logs"
    logs.mkdir()
    for path in sorted((REAL_EVENTS / "edx-analytics-pipeline").glob("*.log")):
        shutil.copy(path, logs / path.name)
    shutil.copy(REAL_EVENTS / "event-routing-backends" / "tracking-log" / "tracking.log", logs / "tutor-tracking.log")
    out = base / "out"
    result = _run(logs, out)
    return logs, out, result


def test_manifest_reconciles_and_matches_the_files(sample_run):
    logs, out, _ = sample_run
    m = manifest(out)
    rec = m["reconciliation"]
    assert rec["balanced"] is True
    assert m["lines_read"] == m["blank_lines"] + m["rejected_total"] + m["duplicates_removed"]["total"] + m["rows_written_total"]
    physical = sum(
        len(p.read_bytes().split(b"\n")) - (1 if p.read_bytes().endswith(b"\n") else 0) for p in logs.iterdir() if p.stat().st_size
    )
    assert m["lines_read"] == physical
    assert {Path(i["path"]).name for i in m["inputs"]} == {p.name for p in logs.iterdir()}
    rows = read_rows(out)
    assert rows.num_rows == m["rows_written_total"]
    rejects = read_jsonl_gz((out / "rejects").glob("*.jsonl.gz"))
    assert len(rejects) == m["rejected_total"]
    duplicates = pq.ParquetDataset(out / "duplicates").read()
    assert duplicates.num_rows == m["duplicates_removed"]["total"]
    assert sum(rows.column("copies").to_pylist()) == rows.num_rows + duplicates.num_rows


def test_every_line_is_accounted_for_by_source_and_line_number(sample_run):
    """Nothing lost: each physical non-blank line is a row, a removed copy or a reject, once."""
    logs, out, _ = sample_run
    rows = read_rows(out)
    seen = []
    rejects = read_jsonl_gz((out / "rejects").glob("*.jsonl.gz"))
    seen += [(Path(r["source"]).name, r["line_number"]) for r in rejects]
    dups = pq.ParquetDataset(out / "duplicates").read().to_pylist()
    seen += [(Path(d["source"]).name, d["line_number"]) for d in dups]
    assert len(seen) == len(set(seen))
    assert rows.num_rows + len(seen) + manifest(out)["blank_lines"] == manifest(out)["lines_read"]


def test_columns_and_types(sample_run):
    _, out, _ = sample_run
    files = sorted((out / "warehouse" / "research").rglob("*.parquet"))
    schema = pq.read_schema(files[0])
    assert schema.names == OUTPUT_COLUMNS
    assert str(schema.field("time").type) == "timestamp[us, tz=UTC]"
    assert str(schema.field("user_id").type) == "int64"
    rows = read_rows(out, "research")
    assert len(set(rows.column("event_id").to_pylist())) == rows.num_rows  # unique per row
    tutor = [r for r in rows.to_pylist() if r["source_file"].endswith("tutor-tracking.log")]
    assert {r["org_id"] for r in tutor} == {"edX"}


def test_no_temporary_files_are_left(sample_run):
    _, out, _ = sample_run
    assert not (out / "_tmp").exists()
    assert not [f for f in files_under(out) if "tmp" in f.split("/")[0] or f.endswith(".tmp")]
    assert not (out / "_lock.json").exists()


def test_summary_is_printed(sample_run):
    _, out, result = sample_run
    assert "lines read" in result.stdout and "rows written" in result.stdout
    assert str(out / "_manifest.json") in result.stdout


def test_avro_gives_the_same_rows_as_parquet(sample_run, tmp_path):
    logs, out, _ = sample_run
    avro_out = tmp_path / "avro"
    _run(logs, avro_out, "--format", "avro", "--no-package")
    parquet_rows = read_rows(out).to_pylist()
    avro_rows = read_rows(avro_out, fmt="avro").to_pylist()
    assert len(avro_rows) == len(parquet_rows)
    for a, p in zip(avro_rows, parquet_rows):
        for column in OUTPUT_COLUMNS:
            assert a[column] == p[column], column
        assert a["dt"] == p["dt"] and a["stream"] == p["stream"]


def test_rerun_replaces_partitions_and_never_doubles(tmp_path, real_logs):
    out = tmp_path / "out"
    _run(real_logs, out)
    first_rows = read_rows(out)
    first_files = files_under(out / "warehouse")
    stale = out / "warehouse" / "research" / "dt=2014-05-02" / "part-stale-from-an-old-run.parquet"
    shutil.copy(next((out / "warehouse" / "research" / "dt=2014-05-02").glob("*.parquet")), stale)
    _run(real_logs, out)
    assert files_under(out / "warehouse") == first_files
    assert read_rows(out).equals(first_rows)


def test_identical_bytes_on_rerun(tmp_path, real_logs):
    a, b = tmp_path / "a", tmp_path / "b"
    _run(real_logs, a)
    _run(real_logs, b)
    for folder in ("warehouse", "duplicates", "research_package", "rejects"):
        names = files_under(a / folder)
        assert names == files_under(b / folder)
        for rel in names:
            assert (a / folder / rel).read_bytes() == (b / folder / rel).read_bytes(), rel


def test_date_selection_writes_only_that_day(tmp_path, real_logs):
    out = tmp_path / "out"
    result = _run(real_logs, out, "--date", "2014-05-02")
    m = manifest(out)
    assert m["dates"] == ["2014-05-02"]
    assert list(m["rows_written"]["research"]) == ["2014-05-02"]
    assert [p.name for p in (out / "warehouse" / "research").iterdir()] == ["dt=2014-05-02"]
    assert m["outside_selected_dates"] > 0
    assert m["reconciliation"]["balanced"]
    assert "outside selected days" in result.stdout


def test_date_range_replaces_days_that_lost_their_rows(tmp_path, real_logs):
    out = tmp_path / "out"
    _run(real_logs, out)
    assert (out / "warehouse" / "research" / "dt=2015-04-13").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "tracking.log").write_text(json.dumps({"event_type": "x", "time": "2015-04-14T01:00:00+00:00"}) + "\n")
    _run(empty, out, "--start-date", "2015-04-13", "--end-date", "2015-04-14")
    assert not (out / "warehouse" / "research" / "dt=2015-04-13").exists()  # the run owns its days
    assert (out / "warehouse" / "research" / "dt=2015-04-14").exists()
    assert (out / "warehouse" / "research" / "dt=2014-05-02").exists()  # other days untouched


def test_gzip_and_plain_inputs_give_the_same_rows(tmp_path, real_logs):
    gz = tmp_path / "gz"
    gz.mkdir()
    for path in real_logs.iterdir():
        (gz / (path.name + ".gz")).write_bytes(gzip.compress(path.read_bytes()))
    a, b = tmp_path / "a", tmp_path / "b"
    _run(real_logs, a, "--no-package")
    _run(gz, b, "--no-package")
    ra, rb = read_rows(a), read_rows(b)
    assert ra.drop_columns(["source_file"]).equals(rb.drop_columns(["source_file"]))


# --- failures: one line on stderr, non-zero exit, nothing published ----------------------------


def test_no_matching_input_fails_cleanly(tmp_path):
    result = run_cli("run", "--input", str(tmp_path / "nothing-*.log"), "--output", str(tmp_path / "out"), check=False)
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0
    assert "matches no file" in result.stderr
    assert not (tmp_path / "out" / "warehouse").exists()


def test_truncated_gzip_fails_naming_the_file_and_publishes_nothing(tmp_path, real_logs):
    out = tmp_path / "out"
    _run(real_logs, out)
    before = files_under(out / "warehouse")
    data = gzip.compress((real_logs / "problem_response_tracking.log").read_bytes())
    (real_logs / "cut.log.gz").write_bytes(data[: len(data) // 2])
    result = _run(real_logs, out, check=False)
    assert result.returncode != 0
    assert "cut.log.gz" in result.stderr and "truncated" in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert files_under(out / "warehouse") == before
    skipped = _run(real_logs, out, "--skip-corrupt-inputs")
    m = manifest(out)
    assert [Path(e["file"]).name for e in m["input_errors"]] == ["cut.log.gz"]
    assert m["reconciliation"]["balanced"]
    assert "input errors" in skipped.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--date", "2014-13-01"], "dates must be YYYY-MM-DD"),
        (["--date", "2014-05-02", "--start-date", "2014-05-01"], "either --date or"),
        (["--start-date", "2014-05-03", "--end-date", "2014-05-01"], "before --start-date"),
        (["--typo-option", "1"], "unknown option --typo-option"),
        (["--format", "csv"], "invalid choice"),
    ],
)
def test_bad_options_are_refused(tmp_path, real_logs, args, message):
    result = _run(real_logs, tmp_path / "out", *args, check=False)
    assert result.returncode != 0
    assert message in result.stderr


def test_help_documents_every_option():
    top = run_cli("--help").stdout
    for command in ("run", "load", "generate", "report"):
        assert command in top
    text = run_cli("run", "--help").stdout
    for option in (
        "--input",
        "--output",
        "--config",
        "--site",
        "--format",
        "--date",
        "--start-date",
        "--end-date",
        "--skip-corrupt-inputs",
        "--max-reject-ratio",
        "--no-package",
        "--load",
        "--dedup-shards",
        "--scratch-dir",
        "--quiet",
    ):
        assert option in text
    assert "--runner" in text  # Beam options are mentioned


def test_beam_way_runs_the_same_job(tmp_path, real_logs):
    import subprocess
    import sys

    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.tracking_logs",
            "--input",
            str(real_logs / "*"),
            "--output",
            str(out),
            "--runner",
            "DirectRunner",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert manifest(out)["reconciliation"]["balanced"]


def test_beam_metrics_carry_the_manifest_counts(sample_run):
    _, out, _ = sample_run
    m = manifest(out)
    metrics = json.loads((out / "_runs" / f"{m['run_id']}.metrics.json").read_text())
    assert metrics["lines_read"] == m["lines_read"]
    assert metrics["blank_lines"] == m["blank_lines"]
    for reason, n in m["rejected"].items():
        assert metrics[f"rejected_{reason}"] == n
    for kind, n in m["duplicates_removed"]["by_kind"].items():
        assert metrics[f"duplicates_{kind}"] == n
    for stream, days in m["rows_written"].items():
        assert metrics[f"rows_{stream}"] == sum(days.values())
    assert metrics["package_files"] == len(m["research_package"]["files"])
