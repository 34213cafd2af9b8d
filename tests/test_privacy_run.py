"""Privacy and retention inside a run: retired learners dropped at parse time, days that
retention would remove never written, pseudonymised research packages.

(`trackpipe forget` and `trackpipe expire`, which act on what was published before, are tested
in tests/test_privacy.py.)
"""

from __future__ import annotations

import datetime as _dt
import gzip
import json
import os
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from tests.helpers import files_under, manifest, run_cli
from trackpipe.config import PrivacyConfig, RetentionConfig
from trackpipe.events.partitions import Cutoffs
from trackpipe.events.pseudonyms import USERNAME_PREFIX, Pseudonymiser
from trackpipe.events.retirement import RetiredUsers
from trackpipe.events.times import date_to_day

KEY = "k3y-for-tests-only-0123456789abcdef"


# --- tier 1 ----------------------------------------------------------------------------------------


def test_who_is_retired():
    retired = RetiredUsers.of(["alice", " bob\n"], ["42", "007"])
    assert retired.matches("alice", None, None) and retired.matches("alice  ", None, None)
    assert retired.matches("", {"username": "bob"}, None)
    assert retired.matches("", {"user_id": 42}, None) and retired.matches("", {"user_id": "7"}, None)
    assert retired.matches("", {}, {"username": "alice"}) and retired.matches("", {}, {"user_id": 7})
    assert retired.matches("", {}, '{"user_id": "42", "x": 1}')  # a browser payload string
    assert not retired.matches("carol", {"user_id": 43, "username": "carol"}, {"user_id": 4.2})
    assert not retired.matches("Alice", None, None)  # usernames as logged: case matters
    assert not RetiredUsers() and len(retired) == 4


def test_pseudonyms_are_stable_keyed_and_differ_between_orgs():
    line = json.dumps({"username": "ann", "ip": "10.0.0.1", "context": {"user_id": 7, "ip": "1.2.3.4"}, "event": {"user_id": "7"}})
    mitx = json.loads(Pseudonymiser(KEY.encode(), "mitx").line(line.encode()))
    again = json.loads(Pseudonymiser(KEY.encode(), "mitx").line(line.encode()))
    other_org = json.loads(Pseudonymiser(KEY.encode(), "harvardx").line(line.encode()))
    other_key = json.loads(Pseudonymiser(b"another-key-0123456789", "mitx").line(line.encode()))
    assert mitx == again
    assert mitx["username"].startswith(USERNAME_PREFIX) and mitx["username"] != "ann"
    assert mitx["context"]["user_id"] == mitx["event"]["user_id"] != 7 and isinstance(mitx["context"]["user_id"], int)
    assert "ip" not in mitx and "ip" not in mitx["context"]
    assert other_org["username"] != mitx["username"] and other_org["context"]["user_id"] != mitx["context"]["user_id"]
    assert other_key["username"] != mitx["username"]
    empty = json.loads(Pseudonymiser(KEY.encode(), "mitx").line(b'{"username": "", "context": {"user_id": null}}'))
    assert empty == {"username": "", "context": {"user_id": None}}


def test_retention_cutoffs():
    today = date_to_day("2026-12-02")
    cut = Cutoffs.of(RetentionConfig(warehouse_days=30, duplicates_days=7, packages_days=90), today)
    assert cut.warehouse == today - 29 and cut.duplicates == today - 6 and cut.packages == today - 29  # never longer than the warehouse
    assert Cutoffs.of(RetentionConfig(), today) == Cutoffs()


# --- whole runs ------------------------------------------------------------------------------------

TODAY = _dt.datetime.now(_dt.UTC).date()


def _day(days_ago: int) -> str:
    return (TODAY - _dt.timedelta(days=days_ago)).isoformat()


def _event(user: str, org: str, t: str, **extra) -> dict:
    obj = {
        "event_type": extra.pop("event_type", "problem_check"),
        "event_source": extra.pop("source", "server"),
        "username": user,
        "session": f"s-{user}",
        "ip": "10.1.2.3",
        "time": t,
        "host": "courses.example.org",
        "context": {"org_id": org, "course_id": f"course-v1:{org}+C1+2026", "user_id": extra.pop("user_id", 100)},
        "event": extra.pop("event", {"attempts": 1}),
    }
    obj.update(extra)
    return obj


def _write(folder: Path, events: list, name: str = "tracking.log-1") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in events))
    return folder


def _config(tmp: Path, text: str, orgs: str | None = None) -> str:
    if orgs is not None:
        (tmp / "orgs.yaml").write_text(orgs)
        text = "orgs_file: orgs.yaml\n" + text
    (tmp / "trackpipe.yaml").write_text(text)
    return str(tmp / "trackpipe.yaml")


def _rows(out: Path) -> list[dict]:
    return ds.dataset(out / "warehouse" / "research", format="parquet", partitioning="hive").to_table().to_pylist()


@pytest.mark.slow
def test_retired_learners_are_dropped_at_parse_time_and_counted(tmp_path):
    t = f"{_day(1)}T10:00:00+00:00"
    events = [
        _event("alice", "MITx", t),  # retired by username
        _event("alice", "MITx", "yesterday"),  # would be a bad_time reject: retired all the same
        _event("bob", "MITx", t, user_id=42),  # retired by context.user_id
        _event("carol", "MITx", t, event={"username": "alice", "x": 1}),  # event.username names a retired user
        _event("dave", "MITx", t, source="browser", event='{"user_id": "42"}'),  # inside a payload string
        _event("eve", "MITx", t),
        _event("eve", "MITx", t),  # an exact copy, of someone else
        "not json {",
    ]
    logs = _write(tmp_path / "logs", events)
    (tmp_path / "retired.csv").write_text("username,user_id\nalice,\n,42\n")
    config = _config(tmp_path, "privacy: {retired_users_file: retired.csv}\nmax_reject_ratio: 0.5\n")
    out = tmp_path / "out"
    result = run_cli("run", "--input", str(logs / "*"), "--output", str(out), "--config", config)
    m = manifest(out)
    assert m["reconciliation"]["retired"] == 5 and m["reconciliation"]["balanced"]
    assert sorted(r["username"] for r in _rows(out)) == ["eve"]
    assert m["rejected"] == {"not_json": 1}
    everything = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file() and p.suffix != ".gz")
    everything += b"".join(gzip.decompress(p.read_bytes()) for p in out.rglob("*.gz"))
    assert b"alice" not in everything and b"bob" not in everything and b"carol" not in everything
    assert "retired learners" in result.stdout and "5 lines dropped" in result.stdout
    assert "alice" not in json.dumps(m)  # the list itself is not recorded in clear
    run_cli("report", str(out))
    page = (out / "report.html").read_text()
    assert '<g class="row" data-key="retired" data-value="5"' in page  # the waterfall still adds up
    assert 'data-key="expired"' not in page


@pytest.mark.slow
def test_days_retention_would_remove_are_never_written(tmp_path):
    events = [
        _event("ann", "MITx", f"{_day(40)}T10:00:00+00:00"),
        _event("ann", "MITx", f"{_day(40)}T10:00:00+00:00"),  # its exact copy: expired with it
        _event("ann", "MITx", f"{_day(10)}T10:00:00+00:00"),
        _event("ann", "MITx", f"{_day(10)}T10:00:00+00:00"),  # kept row, audit expires (7 days)
        _event("ann", "MITx", f"{_day(2)}T10:00:00+00:00"),
        _event("ann", "MITx", f"{_day(2)}T10:00:00+00:00"),
    ]
    logs = _write(tmp_path / "logs", events)
    config = _config(tmp_path, "retention: {warehouse_days: 30, duplicates_days: 7, packages_days: 5}\n")
    out = tmp_path / "out"
    result = run_cli("run", "--input", str(logs / "*"), "--output", str(out), "--config", config)
    m = manifest(out)
    rec = m["reconciliation"]
    assert rec["expired"] == 3 and rec["rows_written"] == 2 and rec["duplicates_removed"] == 1 and rec["balanced"]
    assert sorted(p.name for p in (out / "warehouse" / "research").iterdir()) == [f"dt={_day(10)}", f"dt={_day(2)}"]
    assert sorted(p.name for p in (out / "duplicates").iterdir()) == [f"dt={_day(2)}"]
    packaged = [p.name for p in (out / "research_package").rglob("*.log.gz")]
    assert packaged == [f"mitx-edx-events-{_day(2)}.log.gz"]
    assert m["research_package"]["left_out"]["expired"] == 1
    assert _day(40) not in m["dates"]
    assert "expired" in result.stdout


def _package(out: Path, org: str, day: str) -> list[dict]:
    path = out / "research_package" / org / "edx" / "events" / day[:4] / f"{org}-edx-events-{day}.log.gz"
    return [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]


@pytest.mark.slow
def test_pseudonymised_packages(tmp_path):
    day = _day(1)
    events = [
        _event(u, org, f"{day}T1{i}:00:00+00:00", user_id=uid)
        for i, (u, org, uid) in enumerate([("ann", "MITx", 7), ("ann", "HarvardX", 7), ("bo", "MITx", 8)])
    ]
    logs = _write(tmp_path / "logs", events)
    orgs = "orgs:\n  MITx: {pseudonymise: true}\n  HarvardX: {}\n"
    env = {**os.environ, "TRACKPIPE_PSEUDONYM_KEY": KEY}
    config = _config(tmp_path, "", orgs)
    out, again, plain = tmp_path / "out", tmp_path / "again", tmp_path / "plain"
    run_cli("run", "--input", str(logs / "*"), "--output", str(out), "--config", config, env=env)
    mitx = _package(out, "mitx", day)
    assert [e["username"][:3] for e in mitx] == [USERNAME_PREFIX] * 2 and all("ip" not in e for e in mitx)
    assert {e["context"]["user_id"] for e in mitx}.isdisjoint({7, 8})
    # The warehouse keeps the real values (it is internal); the package does not.
    assert {r["username"] for r in _rows(out)} == {"ann", "bo"}
    # Same pseudonyms on a rerun; the other org's package is byte-for-byte the unpseudonymised one.
    run_cli("run", "--input", str(logs / "*"), "--output", str(again), "--config", config, env=env)
    rel = f"research_package/mitx/edx/events/{day[:4]}/mitx-edx-events-{day}.log.gz"
    assert (again / rel).read_bytes() == (out / rel).read_bytes()
    run_cli(
        "run", "--input", str(logs / "*"), "--output", str(plain), "--config", _config(tmp_path, "", "orgs:\n  MITx: {}\n  HarvardX: {}\n")
    )
    harvard = f"research_package/harvardx/edx/events/{day[:4]}/harvardx-edx-events-{day}.log.gz"
    assert (out / harvard).read_bytes() == (plain / harvard).read_bytes()
    assert _package(plain, "mitx", day)[0]["username"] == "ann"
    # The key is written nowhere.
    for rel_path in files_under(out):
        data = (out / rel_path).read_bytes()
        data = gzip.decompress(data) if rel_path.endswith(".gz") else data
        assert KEY.encode() not in data, rel_path
    pkg_manifest = json.loads((out / "research_package/mitx/edx/events" / day[:4] / f"MANIFEST-{day}.json").read_text())
    assert "pseudonyms" in pkg_manifest["content"]


@pytest.mark.slow
def test_pseudonymising_without_a_key_stops_at_start(tmp_path):
    logs = _write(tmp_path / "logs", [_event("ann", "MITx", f"{_day(1)}T10:00:00+00:00")])
    env = {k: v for k, v in os.environ.items() if k != "TRACKPIPE_PSEUDONYM_KEY"}
    config = _config(tmp_path, "privacy: {pseudonymise: true}\n")
    result = run_cli("run", "--input", str(logs / "*"), "--output", str(tmp_path / "out"), "--config", config, env=env, check=False)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "TRACKPIPE_PSEUDONYM_KEY" in result.stderr and not (tmp_path / "out").exists()
    assert PrivacyConfig().pseudonymise is False
