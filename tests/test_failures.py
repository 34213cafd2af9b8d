"""Failure behaviour: nothing lost, nothing half-published, one clear line on stderr."""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline

from tests.helpers import ROOT, files_under, manifest, read_rows, run_cli
from trackpipe.config import Config
from trackpipe.generator.generate import generate
from trackpipe.storage.workdir import WorkDir
from transforms.read import InputFile, ReadAndStage

pytestmark = pytest.mark.slow
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small or read-only tmpfs needs root (CI runs as root)")


def _run(logs, out, *extra, check=False, env=None):
    return run_cli("run", "--input", str(logs), "--output", str(out), *extra, check=check, env=env)


def _one_line(result) -> str:
    assert result.returncode != 0
    text = result.stderr.strip()
    assert text.count("\n") == 0, text
    return text


def _snapshot(out: Path) -> dict[str, bytes]:
    return {
        rel: (out / rel).read_bytes() for rel in files_under(out) if rel.split("/")[0] in ("warehouse", "research_package", "duplicates")
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    base = tmp_path_factory.mktemp("corpus")
    generate(str(base), 30_000, seed=5, days=2, files=3)
    return base / "logs" / "**" / "*.gz"


@pytest.fixture(scope="module")
def clean_run(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("clean") / "out"
    _run(corpus, out, check=True)
    return out


# --- too many rejects -------------------------------------------------------------------------


def test_a_glob_pointing_at_non_log_files_fails_loudly(tmp_path):
    folder = tmp_path / "notlogs"
    folder.mkdir()
    (folder / "readme.txt").write_text("\n".join(f"line {i} of a text file" for i in range(200)))
    (folder / "data.bin").write_bytes(os.urandom(20000))
    text = _one_line(_run(folder / "*", tmp_path / "out"))
    assert "non-blank lines rejected" in text and "above max_reject_ratio 5.0%" in text and "not_json" in text
    assert not (tmp_path / "out" / "warehouse").exists()


def test_reject_ratio_can_be_raised(tmp_path, real_logs):
    (real_logs / "junk.txt").write_text("junk\n" * 300)
    assert "above max_reject_ratio" in _one_line(_run(real_logs / "*", tmp_path / "a"))
    ok = _run(real_logs / "*", tmp_path / "b", "--max-reject-ratio", "0.5")
    assert ok.returncode == 0
    assert manifest(tmp_path / "b")["rejected"]["not_json"] >= 300


# --- corrupt input ----------------------------------------------------------------------------


def test_bad_crc_names_the_file(tmp_path, real_logs):
    data = bytearray(gzip.compress((real_logs / "problem_response_tracking.log").read_bytes()))
    data[-8] ^= 0xFF
    (real_logs / "crc.log.gz").write_bytes(bytes(data))
    text = _one_line(_run(real_logs / "*", tmp_path / "out"))
    assert "crc.log.gz" in text and "corrupt gzip data" in text
    ok = _run(real_logs / "*", tmp_path / "out", "--skip-corrupt-inputs")
    assert ok.returncode == 0
    [error] = manifest(tmp_path / "out")["input_errors"]
    assert error["file"].endswith("crc.log.gz") and "corrupt" in error["error"]


def _stage(tmp_path, infile: InputFile, skip: bool):
    workdir = WorkDir(str(tmp_path / "out"), f"run-skip-{skip}")
    with TestPipeline() as p:
        _ = p | beam.Create([infile]) | ReadAndStage(Config(), workdir, shards=2, skip_corrupt=skip)
    return workdir


def test_a_file_that_vanishes_after_listing_names_the_file(tmp_path):
    gone = InputFile(str(tmp_path / "tracking.log-gone"), 100)
    with pytest.raises(Exception, match="tracking.log-gone: the file disappeared after it was listed"):
        _stage(tmp_path, gone, skip=False)
    workdir = _stage(tmp_path, gone, skip=True)  # with --skip-corrupt-inputs: recorded, no failure
    assert workdir.errors() == []


def test_an_unreadable_file_names_the_file(tmp_path, monkeypatch):
    """Root can read any file, so the permission error is injected where the file is opened."""
    from trackpipe import storage

    target = tmp_path / "secret.log"
    target.write_text("{}\n")
    real_open = storage.open_read

    def deny(path):
        if path.endswith("secret.log"):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path)

    monkeypatch.setattr(storage, "open_read", deny)
    with pytest.raises(Exception, match="secret.log: permission denied"):
        _stage(tmp_path, InputFile(str(target), 3), skip=False)


# --- interrupted runs -------------------------------------------------------------------------


def _start(corpus, out, env=None):
    cmd = [sys.executable, "-m", "trackpipe.cli", "run", "--input", str(corpus), "--output", str(out), "--quiet"]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def _kill_group(proc):
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _wait_for(predicate, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("moment", ["while reading", "after staging", "while publishing"])
def test_sigkill_at_any_moment_loses_nothing(corpus, clean_run, tmp_path, moment):
    out = tmp_path / "out"
    _run(corpus, out, check=True)
    before = _snapshot(out)
    pauses = {"while reading": "read=30", "after staging": "before_publish=30", "while publishing": "publish=0.2"}
    env = {**os.environ, "TRACKPIPE_TEST_PAUSE": pauses[moment]}
    # A different input, so that a half-published run would show.
    smaller = Path(str(corpus).split("/**")[0])
    biggest = max(smaller.rglob("*.gz"), key=lambda p: p.stat().st_size)
    proc = _start(biggest, out, env)
    tmp = out / "_tmp"
    if moment == "while reading":
        lock = out / "_lock.json"
        assert _wait_for(lambda: lock.exists() and "pid" in lock.read_text())
        time.sleep(3.0)  # the pipeline has started and sits before reading the file
    elif moment == "after staging":
        assert _wait_for(lambda: any(tmp.rglob("warehouse/*/dt=*/*.parquet")) if tmp.exists() else False)
    else:
        assert _wait_for(lambda: any(tmp.rglob("_publish.json")) if tmp.exists() else False)
        time.sleep(0.5)  # a few actions in
    _kill_group(proc)
    if moment != "while publishing":
        assert _snapshot(out) == before  # the previous run's outputs untouched
    for part in (out / "warehouse").rglob("*.parquet"):
        pq.read_table(part)  # every visible file is complete and readable
    assert not [p for p in (out / "warehouse").rglob("*") if "tmp" in p.name]
    # The next run recovers (finishing a half-done publish first) and gives a clean run's rows.
    result = _run(corpus, out, check=True)
    assert result.returncode == 0
    assert read_rows(out).equals(read_rows(clean_run))
    assert not (out / "_tmp").exists() or not any((out / "_tmp").iterdir())


def test_sigterm_stops_cleanly_releases_the_lock_and_publishes_nothing(corpus, clean_run, tmp_path):
    """A scheduler's timeout sends SIGTERM: the run stops with one line and status 143, takes its
    lock and work folder with it (the next run needs no stale-lock takeover), and publishes
    nothing."""
    out = tmp_path / "out"
    _run(corpus, out, check=True)
    before = _snapshot(out)
    biggest = max(Path(str(corpus).split("/**")[0]).rglob("*.gz"), key=lambda p: p.stat().st_size)
    proc = _start(biggest, out, {**os.environ, "TRACKPIPE_TEST_PAUSE": "read=30"})
    lock = out / "_lock.json"
    assert _wait_for(lambda: lock.exists() and "pid" in lock.read_text())
    time.sleep(3.0)  # the pipeline has started and sits before reading the file
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("trackpipe: error: stopped by SIGTERM"), lines
    assert not lock.exists()
    assert not (out / "_tmp").exists()
    assert _snapshot(out) == before
    result = _run(corpus, out, check=True)
    assert "stale lock" not in result.stderr
    assert read_rows(out).equals(read_rows(clean_run))


# --- idempotence ------------------------------------------------------------------------------


def test_day_then_two_days_never_duplicates_the_first(corpus, clean_run, tmp_path):
    out = tmp_path / "out"
    days = sorted(manifest(clean_run)["rows_written"]["research"])
    _run(corpus, out, "--date", days[0], check=True)
    first = read_rows(out, "research")
    _run(corpus, out, "--start-date", days[0], "--end-date", days[1], check=True)
    both = read_rows(out, "research")
    assert both.filter(pc.equal(both.column("dt"), days[0])).num_rows == first.num_rows
    clean = read_rows(clean_run)
    assert read_rows(out).equals(clean.filter(pc.is_in(clean.column("dt"), pa.array(days[:2]))))


# --- concurrent runs --------------------------------------------------------------------------


def test_a_second_run_refuses_while_the_first_holds_the_lock(tmp_path, real_logs):
    out = tmp_path / "out"
    out.mkdir()
    owner = {"run_id": "other-run", "host": socket.gethostname(), "pid": os.getpid(), "started_at": "2026-11-25T10:00:00+00:00"}
    (out / "_lock.json").write_text(json.dumps(owner))
    text = _one_line(_run(real_logs / "*", out))
    assert "in use by run other-run" in text and f"pid {os.getpid()}" in text and "2026-11-25T10:00:00" in text
    assert json.loads((out / "_lock.json").read_text())["run_id"] == "other-run"  # not stolen


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path, real_logs):
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (out / "_lock.json").write_text(json.dumps({"run_id": "dead", "host": socket.gethostname(), "pid": dead.pid}))
    result = _run(real_logs / "*", out)
    assert result.returncode == 0, result.stderr
    assert not (out / "_lock.json").exists()


def test_two_runs_started_together_never_interleave(corpus, clean_run, tmp_path):
    out = tmp_path / "out"
    procs = [_start(corpus, out), _start(corpus, out)]
    results = [(p.wait(timeout=600), p.stderr.read().decode()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes[0] == 0
    if codes[1] != 0:
        assert any("in use by run" in err for _, err in results)
    assert read_rows(out).equals(read_rows(clean_run))


# --- the output's disk ------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@needs_root
def test_disk_full_is_a_clear_error_and_publishes_nothing(small_disk, real_logs, corpus):
    out = small_disk / "out"
    assert _run(real_logs / "*", out).returncode == 0
    before = _snapshot(out)
    text = _one_line(_run(corpus, out))
    assert "no space left on the device" in text
    assert _snapshot(out) == before


@needs_root
def test_read_only_output_is_a_clear_error(small_disk, real_logs):
    out = small_disk / "out"
    assert _run(real_logs / "*", out).returncode == 0
    before = _snapshot(out)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    text = _one_line(_run(real_logs / "*", out))
    assert "read-only file system" in text
    assert _snapshot(out) == before


# --- config errors at start -------------------------------------------------------------------


@pytest.mark.parametrize(
    "config, message",
    [
        ("dedup:\n  window_seconds: -3\n", "dedup.window_seconds"),
        ("dedupe: {}\n", "unknown config key 'dedupe'"),
        ("read: {chunk_lines: many}\n", "read.chunk_lines"),
        ("orgs_file: orgs.yaml\n", "exclude_hosts"),
    ],
)
def test_config_errors_stop_the_run_at_start(tmp_path, real_logs, config, message):
    (tmp_path / "orgs.yaml").write_text("exclude_hosts: ['(unclosed']\n")
    (tmp_path / "c.yaml").write_text(config)
    text = _one_line(_run(real_logs / "*", tmp_path / "out", "--config", str(tmp_path / "c.yaml")))
    assert message in text
    assert not (tmp_path / "out").exists()
