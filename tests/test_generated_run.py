"""Tier 3: whole runs on a generated corpus, checked against the generator's exact counts."""

from __future__ import annotations

import gzip
import json

import pyarrow.parquet as pq
import pytest

from tests.helpers import manifest, read_rows, run_cli
from trackpipe.generator.generate import generate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    base = tmp_path_factory.mktemp("corpus")
    expected = generate(str(base), 20_000, seed=11, days=2, files=3)
    return base, expected


@pytest.fixture(scope="module")
def corpus_run(corpus, tmp_path_factory):
    base, expected = corpus
    out = tmp_path_factory.mktemp("run") / "out"
    run_cli("run", "--input", str(base / "logs" / "**" / "*.gz"), "--output", str(out))
    return out, expected


def test_counts_match_the_generator_exactly(corpus_run):
    out, expected = corpus_run
    m = manifest(out)
    assert m["lines_read"] == expected["lines_read"]
    assert m["blank_lines"] == expected["blank_lines"]
    assert m["rejected"] == {k: v for k, v in expected["rejected"].items() if v}
    assert m["duplicates_removed"]["by_kind"] == expected["duplicates_removed"]
    assert m["duplicates_removed"]["by_source"] == {k: v for k, v in expected["duplicates_by_source"].items() if v}
    assert m["rows_written"] == {s: d for s, d in expected["rows"].items() if d}
    assert m["reconciliation"]["balanced"]


def test_copies_column_accounts_for_every_removed_line(corpus_run):
    out, expected = corpus_run
    rows = read_rows(out)
    dups = pq.ParquetDataset(out / "duplicates").read()
    assert sum(rows.column("copies").to_pylist()) == rows.num_rows + dups.num_rows
    kept_ids = set(rows.column("event_id").to_pylist())
    assert set(dups.column("event_id").to_pylist()) <= kept_ids  # every copy points at a kept row
    gaps = [abs(g) for g, k in zip(dups.column("time_gap_seconds").to_pylist(), dups.column("kind").to_pylist()) if k == "client_resend"]
    assert gaps and max(gaps) <= 5.0


def test_package_event_counts_match_the_generator(corpus_run):
    out, expected = corpus_run
    m = manifest(out)
    counts = {}
    for entry in m["research_package"]["files"]:
        counts[(entry["org"], entry["date"])] = entry["events"]
    want = {(org.lower(), date): n for org, days in expected["org_rows"].items() for date, n in days.items() if n}
    assert counts == want


def test_input_order_does_not_matter(corpus, corpus_run, tmp_path):
    """Listing the files one by one in reverse order gives the very same rows and bytes."""
    base, _ = corpus
    out, _ = corpus_run
    files = sorted((base / "logs").rglob("*.gz"), reverse=True)
    args = []
    for path in files:
        args += ["--input", str(path)]
    other = tmp_path / "out"
    run_cli("run", *args, "--output", str(other))
    assert read_rows(other).equals(read_rows(out))
    for package in sorted((out / "research_package").rglob("*.log.gz")):
        twin = other / package.relative_to(out)
        assert twin.read_bytes() == package.read_bytes()


def test_a_copy_whose_kept_twin_is_on_the_previous_day_is_not_written(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    event = {"event_type": "seq_goto", "event_source": "browser", "username": "ann", "session": "s", "event": '{"id": 1}'}
    before = dict(event, time="2026-11-02T23:59:59.500000+00:00")
    after = dict(event, time="2026-11-03T00:00:00.800000+00:00")
    (logs / "tracking.log-20261103-1").write_text(json.dumps(before) + "\n")
    (logs / "tracking.log-20261104-1").write_text(
        json.dumps(after) + "\n" + json.dumps(dict(event, time="2026-11-03T10:00:00+00:00")) + "\n"
    )
    out = tmp_path / "out"
    run_cli("run", "--input", str(logs / "*"), "--output", str(out), "--date", "2026-11-03")
    m = manifest(out)
    assert m["rows_written"] == {"research": {"2026-11-03": 1}}  # only the 10:00 event
    assert m["outside_selected_dates"] == 2  # the kept twin on 11-02 and its copy
    assert not (out / "duplicates").exists() or not list((out / "duplicates").rglob("*.parquet"))
    full = tmp_path / "full"
    run_cli("run", "--input", str(logs / "*"), "--output", str(full))
    rows = read_rows(full, "research").to_pylist()
    assert [(r["dt"], r["copies"]) for r in rows if r["time"].day == 2] == [("2026-11-02", 2)]


def test_package_lines_are_the_raw_json_of_the_kept_events(corpus_run):
    out, _ = corpus_run
    package = sorted((out / "research_package").rglob("*.log.gz"))[0]
    org = package.name.split("-")[0]
    date = package.name.split("-events-")[1][:10]
    lines = gzip.decompress(package.read_bytes()).splitlines()
    from trackpipe.config import Config
    from trackpipe.events.parse import LineParser

    parser = LineParser(Config())
    parsed = [parser.parse(line) for line in lines]
    ids = [p.event_id for p in parsed]
    rows = read_rows(out, "research")
    want = sorted(
        ((r["received_at"], r["time"], r["event_id"]) for r in rows.to_pylist() if r["dt"] == date and (r["org_id"] or "").lower() == org),
    )
    assert ids == [w[2] for w in want]  # the kept events of the org and day, in package order
    assert all(line.startswith(b"{") and line.endswith(b"}") for line in lines)  # prefixes stripped
