"""Big files are read as byte ranges by several workers: splitting never changes a result.

Tier 1: the range reader gives every line exactly once, whatever the cut points (lines longer
than a range included). Tier 3: whole runs with tiny ranges against runs without splitting give
the same rows, audit, rejects, packages and counts; a truncated gzip file that is split is still
caught.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
from pathlib import Path

import pyarrow.dataset as ds
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import manifest, run_cli
from trackpipe.events.lines import TooLong, first_line_start, iter_lines, iter_range_lines

MAX_LINE = 1 << 20


def _as_list(lines):
    return [(line.head, line.length) if isinstance(line, TooLong) else line for line in lines]


def _ranges(data: bytes, size: int, max_line: int = MAX_LINE) -> list:
    out = []
    for start in range(0, max(len(data), 1), size):
        end = start + size if start + size < len(data) else float("inf")
        out += _as_list(iter_range_lines(io.BytesIO(data), "x.log", start, end, max_line, 50))
    return out


LINE = st.one_of(
    st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")),
    st.integers(0, 300).map(lambda n: b"y" * n),
    st.just(b""),
    st.just(b"\r"),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(LINE, max_size=30), st.booleans(), st.integers(1, 120))
def test_ranges_read_every_line_exactly_once(lines, newline_at_end, size):
    data = b"\n".join(lines) + (b"\n" if newline_at_end and lines else b"")
    whole = _as_list(iter_lines(io.BytesIO(data), "x.log", MAX_LINE, 50, plain=True))
    assert _ranges(data, size) == whole


def test_a_line_longer_than_several_ranges_is_read_once_by_the_range_it_starts_in():
    data = b"a\n" + b"L" * 1000 + b"\nb\nc"
    assert _ranges(data, 7) == [b"a", b"L" * 1000, b"b", b"c"]
    # overlong lines (beyond max_line_bytes) too: one TooLong, from the range it starts in
    assert _ranges(data, 7, max_line=100) == [b"a", (b"L" * 50, 1000), b"b", b"c"]


def test_first_line_start():
    data = io.BytesIO(b"ab\ncd\n\nef")
    assert [first_line_start(data, s) for s in range(0, 10)] == [0, 3, 3, 3, 6, 6, 6, 7, None, None]


# --- whole runs ------------------------------------------------------------------------------------


def _event(i: int, **extra) -> str:
    obj = {
        "event_type": extra.pop("event_type", "problem_check"),
        "event_source": extra.pop("source", "server"),
        "username": f"u{i % 50}",
        "session": f"s{i % 50}",
        "time": f"2026-11-02T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}.{i % 1000:03d}000+00:00",
        "context": {"org_id": "MITx", "course_id": "course-v1:MITx+6.002x+2T2026", "user_id": i % 50},
        "event": extra.pop("event", {"n": i % 700}),
    }
    obj.update(extra)
    return json.dumps(obj)


@pytest.fixture(scope="module")
def big_logs(tmp_path_factory):
    """One big plain file (with lines longer than a range, re-sends, exact copies and bad lines)
    and one big gzip file: both are split with read.split_bytes of 1 MiB."""
    base = tmp_path_factory.mktemp("split")
    logs = base / "logs"
    logs.mkdir()
    lines = []
    for i in range(9000):
        lines.append(_event(i))
        if i % 97 == 0:
            lines.append(lines[-1])  # an exact copy
        if i % 89 == 0:
            lines.append(_event(i, source="browser", event_type="seq_goto", event='{"id": "b"}'))
        if i % 1000 == 0:
            lines.append("not json at all {")
        if i % 3000 == 1:
            lines.append(_event(i, event={"blob": "z" * 3_000_000}))  # a 3 MB line: longer than a range
    text = "\n".join(lines) + "\n"
    (logs / "tracking.log-20261103-1").write_text(text)
    (logs / "tracking.log-20261103-2.gz").write_bytes(gzip.compress(text.replace("u1", "w1").encode(), 6))
    (base / "split.yaml").write_text("read:\n  split_bytes: 1048576\n")
    (base / "whole.yaml").write_text("read:\n  split_bytes: 0\n")
    return base


def _rows(out: Path, sub: str) -> list:
    table = ds.dataset(out / sub, format="parquet", partitioning="hive").to_table()
    return sorted(json.dumps(row, sort_keys=True, default=str) for row in table.to_pylist())


def _rejects(out: Path) -> list:
    return sorted(line for p in (out / "rejects").glob("*.gz") for line in gzip.open(p, "rt"))


@pytest.mark.slow
def test_splitting_never_changes_a_result(big_logs):
    outs = {}
    runs = {
        "whole": ("whole.yaml",),
        "split": ("split.yaml",),
        # The ranges handed to two worker processes: the same ranges, so the same result.
        "split-2-workers": ("split.yaml", "--direct_running_mode", "multi_processing", "--direct_num_workers", "2"),
    }
    for name, (config, *flags) in runs.items():
        outs[name] = big_logs / f"out-{name}"
        run_cli("run", "--input", str(big_logs / "logs" / "*"), "--output", str(outs[name]), "--config", str(big_logs / config), *flags)
    whole = outs["whole"]
    for name in ("split", "split-2-workers"):
        _same_result(outs[name], whole)
    assert "multi_processing, 2 worker" in manifest(outs["split-2-workers"])["options"]["parallelism"]


def _same_result(split: Path, whole: Path) -> None:
    for sub in ("warehouse/research", "duplicates"):
        assert _rows(split, sub) == _rows(whole, sub), sub
    assert _rejects(split) == _rejects(whole)  # line numbers included
    packages = sorted(p.relative_to(whole).as_posix() for p in (whole / "research_package").rglob("*.gz"))
    for rel in packages:
        assert (split / rel).read_bytes() == (whole / rel).read_bytes(), rel
    mw, ms = manifest(whole), manifest(split)
    for key in ("reconciliation", "rejected", "duplicates_removed", "rows_written", "lines_read"):
        assert ms[key] == mw[key], key
    assert [(i["path"], i["lines"], i["bytes"]) for i in ms["inputs"]] == [(i["path"], i["lines"], i["bytes"]) for i in mw["inputs"]]
    assert max(i["chunks"] for i in ms["inputs"]) > 5  # it was split
    assert mw["duplicates_removed"]["by_kind"]["exact"] > 0 and mw["rejected"]["not_json"] > 0


@pytest.mark.slow
def test_a_split_gzip_file_that_is_truncated_is_still_caught(big_logs, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    data = (big_logs / "logs" / "tracking.log-20261103-2.gz").read_bytes()
    (logs / "cut.log.gz").write_bytes(data[: len(data) * 2 // 3])
    config = str(big_logs / "split.yaml")
    failed = run_cli("run", "--input", str(logs / "*"), "--output", str(tmp_path / "out"), "--config", config, check=False)
    assert failed.returncode == 1 and "truncated gzip stream" in failed.stderr and "cut.log.gz" in failed.stderr
    assert not (tmp_path / "out" / "warehouse").exists()
    out = tmp_path / "out2"
    run_cli("run", "--input", str(logs / "*"), "--output", str(out), "--config", config, "--skip-corrupt-inputs")
    m = manifest(out)
    [error] = m["input_errors"]
    assert error["file"].endswith("cut.log.gz") and "truncated" in error["error"] and error["lines_read"] > 1000
    assert m["lines_read"] == error["lines_read"] and m["reconciliation"]["balanced"]
    assert not os.path.exists(tmp_path / "out2" / "_tmp")
    shutil.rmtree(tmp_path / "out")
