"""`trackpipe forget` and `trackpipe expire`: retiring learners from what was published, and
retention, on real files, real gpg, real DuckDB and PostgreSQL.

(Privacy inside a run, retired learners dropped at parse time, days never written, pseudonymised
packages, is tested in tests/test_privacy_run.py.)

The whole-run tests share one published output (`published`): a generated corpus plus a
hand-made log of three learners to retire and one to keep, run with an org config where MITx's
packages are encrypted to a key whose secret is in the test keyring and HarvardX's are not.
Each test works on a copy.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import fastavro
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import ROOT, manifest, run_cli
from tests.services import generate_key, kill_gpg_agent, make_gnupg_home, run_gpg
from trackpipe.config import Config, OrgEntry, OrgsConfig, PrivacyConfig, RetentionConfig, config_from_dict
from trackpipe.events.pseudonyms import Pseudonymiser
from trackpipe.privacy.matching import LineMatcher, RejectMatcher, RowMatcher
from trackpipe.privacy.removal_counts import Removal, updated_manifest
from trackpipe.privacy.retired_users import RetiredList

# --- tier 1: the matching rules, the records, the manifest --------------------------------------------


def test_reject_lines_are_matched_as_documented():
    m = RejectMatcher(RetiredList.of(["alice", 'q"x'], ["42"]))
    assert m.matches('{"username": "alice", "x": 1')  # a token, in a line that is not JSON
    assert m.matches('{"username": " alice "}')  # whitespace inside the quotes
    assert m.matches('{"event": "{\\"username\\": \\"alice\\"}"')  # a JSON string inside a JSON string
    assert m.matches('{"username": "alice')  # cut right after the name
    assert m.matches('{"user_id": 42,') and m.matches('{"user_id" :\t"0042"}') and m.matches('{\\"user_id\\": 42')
    assert m.matches('{"username": "q\\"x"')  # the JSON-escaped spelling
    assert m.matches("[1, 2]", detail='no JSON object in line: {"username": "alice"')  # the detail too
    assert not m.matches('{"username": "alice2"}') and not m.matches('{"username": "malice"}')
    assert not m.matches('{"user_id": 421}') and not m.matches('{"other_id": 42}') and not m.matches("alice alone")
    assert not RejectMatcher(RetiredList()).matches('{"username": "alice"}')


def test_warehouse_rows_are_matched_by_the_rule():
    m = RowMatcher(RetiredList.of(["alice", "José"], ["42"]))
    rows = [
        ("alice", None, "{}", "{}", True),  # the username column
        ("bob", 42, "{}", "{}", True),  # the user_id column
        ("", None, '{"username":"alice"}', "{}", True),  # context.username
        ("", None, '{"user_id":"042"}', "{}", True),  # context.user_id as digits
        ("bob", 7, "{}", '{"user_id": "42", "n": 1}', True),  # a browser payload string
        ("bob", 7, "{}", '{"username":"Jos\\u00e9"}', True),  # escaped to ASCII, as Python logs it
        ("bob", 7, '{"page":"/u/alice"}', '{"text":"alice"}', False),  # mentioned, but not the learner
        ("alice2", 421, '{"user_id":421}', '{"user_id":4.2}', False),
        (None, None, None, None, False),
    ]
    table = pa.table(
        {
            "username": pa.array([r[0] for r in rows], pa.string()),
            "user_id": pa.array([r[1] for r in rows], pa.int64()),
            "context": pa.array([r[2] for r in rows], pa.string()),
            "event": pa.array([r[3] for r in rows], pa.string()),
        }
    )
    assert m.rows(table).tolist() == [r[4] for r in rows]
    many = RowMatcher(RetiredList.of([f"user{i}" for i in range(50)] + ["alice"], []))  # the RE2 pre-filter
    assert many.rows(table).tolist() == [True, False, True, False, False, False, False, False, False]


def test_package_lines_are_matched_by_the_rule():
    m = LineMatcher(RetiredList.of(["José"], ["42"]))
    assert m.matches(b'{"username": "Jos\\u00e9", "event_type": "x"}')
    assert m.matches(b'{"username": "x", "context": {"user_id": 42}}')
    assert not m.matches(b'{"username": "x", "page": "/u/Jos\\u00e9", "context": {"user_id": 421}}')
    assert not m.matches(b"not json")


def test_the_record_keeps_salted_hashes_only():
    retired = RetiredList.of([" alice ", "bob", "alice"], ["007", 8, "x"])
    assert retired.usernames == ("alice", "bob") and retired.user_ids == ("7", "8")
    hashed = retired.salted_hashes()
    text = json.dumps(hashed)
    assert "alice" not in text and '"7"' not in text
    salt = bytes.fromhex(hashed["salt"])
    assert hmac.new(salt, b"username:alice", hashlib.sha256).hexdigest() in hashed["usernames"]
    assert hmac.new(salt, b"user_id:7", hashlib.sha256).hexdigest() in hashed["user_ids"]
    assert retired.salted_hashes()["salt"] != hashed["salt"]


def test_the_config_recorded_in_a_manifest_is_read_back():
    config = Config(
        site="edge",
        format="avro",
        orgs=OrgsConfig(listed=True, orgs=(OrgEntry("MITx", ("mitxpro",), ("/k/a.asc",), True),), master_recipients=("ABCDEF0123456789",)),
        retention=RetentionConfig(warehouse_days=30),
        privacy=PrivacyConfig(pseudonymise=True, pseudonym_key_file="/k/key"),
    )
    assert config_from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config_from_dict({"site": "edx", "unknown": 1}) == Config()


def _small_manifest() -> dict:
    return {
        "run_id": "r",
        "dates": ["2026-11-02"],
        "rows_written": {"research": {"2026-11-02": 10}},
        "rows_written_total": 10,
        "rows_written_by_source": {"server": 10},
        "partitions": [
            {"stream": "research", "dt": "2026-11-02", "rows": 10, "path": "warehouse/research/dt=2026-11-02", "files": ["a", "b"]}
        ],
        "duplicates_removed": {
            "total": 3,
            "by_kind": {"exact": 3},
            "by_source": {"server": 3},
            "by_source_and_kind": {"server": {"exact": 3}},
            "by_dt": {"2026-11-02": 3},
            "top_names": [["x", 3]],
        },
        "rejected": {"not_json": 2},
        "rejected_total": 2,
        "reconciliation": {
            "lines_read": 16,
            "blank_lines": 1,
            "rejected": 2,
            "duplicates_removed": 3,
            "rows_written": 10,
            "outside_selected_dates": 0,
            "retired": 0,
            "expired": 0,
            "balanced": True,
        },
    }


def test_the_manifest_still_balances_after_a_forget_and_an_expire():
    removal = Removal()
    part = removal.partition("research", "2026-11-02")
    part.rows, part.files_changed, part.files_after = 4, 1, ["a"]
    part_old = removal.partition("research", "2026-10-01")  # a day of an older run: not in the manifest
    part_old.rows = 5
    removal.rows_by_source["server"] += 4
    removal.audit_day("2026-11-02").rows = 1
    removal.add_audit_stats(["exact"], ["server"], ["x"])
    removal.rejects["not_json"] += 1
    m = updated_manifest(_small_manifest(), removal, "forgotten", "f1")
    rec = m["reconciliation"]
    assert rec["forgotten"] == 6 and rec["rows_written"] == 6 and rec["duplicates_removed"] == 2 and rec["rejected"] == 1
    assert rec["balanced"] and list(rec)[-1] == "balanced" and m["retirements"] == ["f1"]
    assert m["partitions"][0]["files"] == ["a"] and m["rows_written_by_source"] == {"server": 6}
    assert m["duplicates_removed"]["top_names"] == [["x", 2]]
    gone = Removal()
    day = gone.partition("research", "2026-11-02")
    day.rows, day.gone, day.files_after = 6, True, []
    gone.rows_by_source["server"] += 6
    gone.audit_day("2026-11-02").rows, gone.audit_day("2026-11-02").gone = 2, True
    gone.add_audit_stats(["exact", "exact"], ["server", "server"], ["x", "x"])
    m2 = updated_manifest(m, gone, "expired", "e1")
    assert m2["reconciliation"]["expired"] == 8 and m2["reconciliation"]["balanced"] and m2["partitions"] == []
    assert m2["rows_written"] == {"research": {}} and m2["duplicates_removed"]["total"] == 0 and m2["expirations"] == ["e1"]


# --- whole runs ------------------------------------------------------------------------------------

RETIRED_NAMES = ["zq_alpha", "zq_beta", "zq_gamma"]
RETIRED_IDS = ["900000001", "900000002", "900000003"]
USERS_CSV = "username,user_id\nzq_alpha,900000001\nzq_beta,\n,900000003\n"
D1, D2 = "2026-11-02", "2026-11-03"


def _event(user, org, t, uid, source="server", **extra) -> dict:
    obj = {
        "event_type": extra.pop("event_type", "problem_check"),
        "event_source": source,
        "username": user,
        "session": extra.pop("session", f"s-{user}"),
        "ip": "10.1.2.3",
        "time": t,
        "host": "courses.example.org",
        "context": {"org_id": org, "course_id": f"course-v1:{org}+C1+2026", "user_id": uid, **extra.pop("context", {})},
        "event": extra.pop("event", {"attempts": 1}),
    }
    obj.update(extra)
    return obj


def _crafted_lines() -> list[str]:
    """Events of the three learners to retire, every way the rule finds them, and of one to keep."""
    alpha = _event("zq_alpha", "MITx", f"{D1}T10:00:00+00:00", 900000001)
    beta = _event("zq_beta", "HarvardX", f"{D1}T10:10:00+00:00", 900000002)
    events = [
        alpha,
        alpha,  # an exact copy: a duplicates-audit row
        _event("zq_alpha", "HarvardX", f"{D1}T10:20:00.000+00:00", 900000001, source="browser", event='{"id": "x"}'),
        _event("zq_alpha", "HarvardX", f"{D1}T10:20:00.400+00:00", 900000001, source="browser", event='{"id": "x"}'),  # a re-send
        _event("zq_alpha", "MITx", f"{D1}T10:30:00+00:00", 900000001, event_type="edx.bi.course.upgrade"),  # internal BI
        _event("zq_alpha", "MITx", f"{D2}T09:00:00+00:00", 900000001),
        beta,
        beta,
        _event("", "MITx", f"{D1}T11:00:00+00:00", 900000002, source="mobile", context={"username": "zq_beta"}, session=""),
        _event("ok_user1", "MITx", f"{D1}T11:10:00+00:00", 800000001, event={"username": "zq_beta", "thread": 3}),  # about beta
        _event("zq_gamma", "MITx", f"{D1}T12:00:00+00:00", "900000003"),
        _event("zq_gamma", "HarvardX", f"{D2}T12:10:00+00:00", 900000003, source="browser", event='{"user_id": "900000003"}'),
        _event("", "HarvardX", f"{D2}T12:20:00+00:00", None, source="task", event={"user_id": 900000003, "grade": 1}),
        _event("ok_user1", "MITx", f"{D1}T13:00:00+00:00", 800000001),
        _event("ok_user1", "MITx", f"{D1}T13:00:00+00:00", 800000001),
        _event("ok_user1", "HarvardX", f"{D2}T13:00:00+00:00", 800000001),
        _event("ok_user2", "HarvardX", f"{D2}T13:10:00+00:00", 9000000010),  # an id that starts like a retired one
    ]
    lines = [json.dumps(e) for e in events]
    lines += [
        '{"username": "zq_alpha", "event_type": "problem_check", "time": "2026-11-02T10:00:00+00:00", "context": {"user_id": 9000',
        json.dumps({"username": " zq_alpha ", "event_type": "problem_check", "context": {"user_id": 900000001}}),  # no time
        json.dumps({"username": "zq_beta", "event_type": "x", "time": "yesterday", "context": {"user_id": 900000002}}),
        '{"event_type": "problem_check", "time": "2026-11-02T10:00:00+00:00", "username": "zq_beta',  # cut after the name
        json.dumps({"username": "zq_gamma", "time": f"{D1}T10:00:00+00:00", "context": {"user_id": 900000003}}),  # no event_type
        '{"event": "{\\"user_id\\": 900000003, \\"x\\": 1}", "time": "2026-11-02T1',
        json.dumps({"username": "ok_user1", "event_type": "x", "time": "later", "context": {"user_id": 800000001}}),
    ]
    return lines


@pytest.fixture(scope="module")
def keyring():
    home = make_gnupg_home()
    try:
        fingerprint, public_key = generate_key(home, "Research", "research@example.org")
        yield {"home": home, "fingerprint": fingerprint, "key": public_key}
    finally:
        kill_gpg_agent(home)
        shutil.rmtree(home, ignore_errors=True)


def _env(keyring, **extra) -> dict:
    return {**os.environ, "GNUPGHOME": keyring["home"], **extra}


@pytest.fixture(scope="module")
def published(tmp_path_factory, keyring):
    base = tmp_path_factory.mktemp("published")
    run_cli("generate", "--events", "20000", "--seed", "3", "--days", "2", "--files", "3", "--out", str(base / "gen"))
    (base / "extra").mkdir()
    (base / "extra" / "tracking.log-20261103-1").write_text("\n".join(_crafted_lines()) + "\n")
    (base / "orgs.yaml").write_text(f"orgs:\n  MITx: {{recipients: [{keyring['key']}]}}\n  HarvardX: {{}}\n")
    (base / "trackpipe.yaml").write_text("orgs_file: orgs.yaml\n")
    (base / "retired.csv").write_text(USERS_CSV)
    out = base / "out"
    inputs = ["--input", str(base / "gen" / "logs" / "**" / "tracking.log-*"), "--input", str(base / "extra" / "*")]
    run_cli("run", *inputs, "--output", str(out), "--config", str(base / "trackpipe.yaml"), env=_env(keyring))
    return base


def _copy(published: Path, tmp_path: Path, name: str = "out") -> Path:
    target = tmp_path / name
    shutil.copytree(published / "out", target)
    return target


_RETIRED = re.compile("|".join([*map(re.escape, RETIRED_NAMES), *(rf"(?<!\d){i}(?!\d)" for i in RETIRED_IDS)]))


def _mentions(text) -> bool:
    """Whether a value (a row, a line) holds a retired learner's username or id, anywhere."""
    text = text if isinstance(text, str) else json.dumps(text, default=str)
    return any(n in text for n in (*RETIRED_NAMES, *RETIRED_IDS)) and _RETIRED.search(text) is not None


def _decrypt(keyring, path: Path) -> bytes:
    return run_gpg(keyring["home"], "--decrypt", str(path)).stdout


def _file_values(keyring, path: Path):
    """A file's content as the test reads it back: rows of Parquet/Avro, lines of the rest."""
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    if path.suffix == ".avro":
        with open(path, "rb") as handle:
            return list(fastavro.reader(handle))
    data = path.read_bytes()
    if path.name.endswith(".gpg"):
        data = _decrypt(keyring, path)
    if path.name.endswith((".gz", ".gz.gpg")):
        data = gzip.decompress(data)
    return data.decode("utf-8", "replace").splitlines()


def _contents(keyring, out: Path) -> dict:
    return {str(p.relative_to(out)): _file_values(keyring, p) for p in sorted(out.rglob("*")) if p.is_file()}


def _traces(contents: dict) -> list[str]:
    return [f"{rel}: {item!s:.200}" for rel, items in contents.items() for item in items if _mentions(item)]


def _tree(out: Path) -> dict:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.rglob("*")) if p.is_file()}


def _warehouse_rows(url: str) -> list[dict]:
    sql = "SELECT 'research' AS stream, * FROM research_events UNION ALL SELECT 'internal_bi', * FROM internal_bi_events"
    if url.startswith("duckdb://"):
        with duckdb.connect(url[len("duckdb://") :], read_only=True) as con:
            cursor = con.execute(sql)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]
    with psycopg.connect(url) as con:
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def _loads(url: str, load_id_prefix: str) -> list[tuple]:
    sql = "SELECT load_id, stream, CAST(dt AS TEXT), row_count, checksum FROM trackpipe_loads WHERE load_id LIKE ? ORDER BY stream, dt"
    if url.startswith("duckdb://"):
        with duckdb.connect(url[len("duckdb://") :], read_only=True) as con:
            return con.execute(sql, [load_id_prefix + "%"]).fetchall()
    with psycopg.connect(url) as con:
        return con.execute(sql.replace("?", "%s"), (load_id_prefix + "%",)).fetchall()


def _by_event_id(rows: list[dict]) -> dict:
    return {(r["stream"], r["event_id"]): {k: v for k, v in r.items()} for r in rows}


def _is_data(rel: str) -> bool:
    return rel.startswith(("warehouse/", "duplicates/", "rejects/", "research_package/")) and not rel.endswith(".json")


def _expected_without_retired(before: dict) -> tuple[dict, set]:
    """Per file: what must be left, read back the same way (rows, lines or package events)."""
    removed_ids = {
        r["event_id"]
        for rel, items in before.items()
        if rel.startswith("warehouse/")
        for r in items
        if _mentions([r["username"], r["user_id"], r["context"], r["event"]])
    }
    expected = {}
    for rel, items in before.items():
        if rel.startswith("warehouse/"):
            kept = [r for r in items if r["event_id"] not in removed_ids]
        elif rel.startswith("duplicates/"):
            kept = [r for r in items if r["event_id"] not in removed_ids]
        elif rel.startswith(("rejects/", "research_package/")) and not rel.endswith(".json"):
            kept = [line for line in items if not _mentions(line)]
        else:
            continue
        if kept:
            expected[rel] = kept
    return expected, removed_ids


@pytest.mark.slow
@pytest.mark.postgres
def test_forget_removes_every_trace_and_nothing_else(published, keyring, tmp_path, pg_url):
    out = _copy(published, tmp_path)
    duck = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    env = _env(keyring)
    for url in (duck, pg_url):
        run_cli("load", "--output", str(out), "--warehouse", url)
    run_cli("report", str(out))
    before = _contents(keyring, out)
    wh_before = {url: _warehouse_rows(url) for url in (duck, pg_url)}
    traces = _traces(before)
    assert len(traces) > 20  # the learners are in partitions, rejects, packages
    for needle in ("research_package/mitx", "research_package/harvardx", "rejects/", "warehouse/internal_bi"):
        assert any(t.startswith(needle) for t in traces), needle
    users = published / "retired.csv"
    forget = ["forget", "--output", str(out), "--users", str(users), "--warehouse", duck, "--warehouse", pg_url]

    tree = _tree(out)
    dry = run_cli(*forget, "--dry-run", env=env)
    assert "would remove" in dry.stdout and "nothing was changed" in dry.stdout
    assert _tree(out) == tree and {url: _warehouse_rows(url) for url in (duck, pg_url)} == wh_before

    started = time.monotonic()
    result = run_cli(*forget, env=env)
    print(f"forget: {time.monotonic() - started:.1f} s")
    after = _contents(keyring, out)
    assert _traces(after) == []
    expected, removed_ids = _expected_without_retired(before)
    assert {rel for rel in after if _is_data(rel)} == set(expected)
    for rel, kept in expected.items():
        assert after[rel] == kept, rel
    changed = {rel for rel in expected if expected[rel] != before[rel]}
    assert any(rel.startswith("duplicates/") for rel in changed)  # audit rows of removed rows went with them
    assert any(rel.endswith(".gpg") for rel in changed)  # an encrypted package was rewritten and still decrypts
    for url in (duck, pg_url):
        rows = _warehouse_rows(url)
        assert [r for r in rows if _mentions([r["username"], r["user_id"], r["context"], r["event"]])] == []
        assert _by_event_id(rows) == {k: v for k, v in _by_event_id(wh_before[url]).items() if k[1] not in removed_ids}
        assert {stream for _id, stream, *_ in _loads(url, "forget-")} == {"research", "internal_bi"}

    m = manifest(out)
    rec = m["reconciliation"]
    assert rec["balanced"] and rec["forgotten"] > 0 and len(m["retirements"]) == 1
    from trackpipe.report.data import gather

    assert gather(str(out)).notes == []
    page = (out / "report.html").read_text()
    assert "forgotten" in page
    [record_path] = (out / "_retirements").iterdir()
    record = json.loads(record_path.read_text())
    assert record["report"] == "regenerated" and all(w["status"] == "done" for w in record["warehouses"])
    assert record["totals"]["warehouse_rows"] == len(removed_ids) and "record:" in result.stdout
    salt = bytes.fromhex(record["users"]["salt"])
    assert hmac.new(salt, b"username:zq_alpha", hashlib.sha256).hexdigest() in record["users"]["usernames"]
    for rel, digest_manifest in _package_manifests(out):
        assert digest_manifest["sha256"] == hashlib.sha256((out / rel).read_bytes()).hexdigest(), rel
        assert digest_manifest["events"] == len(after[rel]), rel

    # A second forget with the same list changes nothing, in the output or the warehouses.
    tree = _tree(out)
    again = run_cli(*forget, env=env)
    assert "nothing to forget" in again.stdout
    assert _tree(out) == tree and len(list((out / "_retirements").iterdir())) == 1
    # Loading the forgotten output again: the days forget rewrote are already in step (skipped).
    reload = run_cli("load", "--output", str(out), "--warehouse", duck)
    assert not re.search(r": loaded \d", reload.stdout), reload.stdout
    assert [r for r in _warehouse_rows(duck) if _mentions([r["username"], r["context"], r["event"]])] == []


def _package_manifests(out: Path):
    for path in sorted((out / "research_package").rglob("MANIFEST-*.json")):
        data = json.loads(path.read_text())
        for entry in data["files"]:
            yield str((path.parent / entry["name"]).relative_to(out)), entry


def _comparable(keyring, out: Path) -> dict:
    """The output's state, with what legitimately differs between two forgets left out (ids, times,
    ciphertext: encrypted packages are compared decrypted)."""
    state = {}
    for rel, values in _contents(keyring, out).items():
        if rel.startswith(("_retirements/", "report.html")):
            continue
        if rel == "_manifest.json" or rel.endswith(".json") and rel.startswith("research_package/"):
            data = json.loads("\n".join(values))
            data.pop("retirements", None)
            for entry in data.get("files") or (data.get("research_package") or {}).get("files") or []:
                if entry.get("encrypted") or str(entry.get("name", "")).endswith(".gpg"):
                    entry.pop("sha256", None)
                    entry.pop("bytes", None)
            values = data
        state[rel] = values
    return state


@pytest.mark.slow
def test_a_forget_killed_while_replacing_files_is_finished_by_the_next_one(published, keyring, tmp_path):
    clean, killed = _copy(published, tmp_path, "clean"), _copy(published, tmp_path, "killed")
    for out in (clean, killed):
        run_cli("report", str(out))
    users = str(published / "retired.csv")
    run_cli("forget", "--output", str(clean), "--users", users, env=_env(keyring))
    cmd = [sys.executable, "-m", "trackpipe.cli", "forget", "--output", str(killed), "--users", users]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=_env(keyring, TRACKPIPE_TEST_PAUSE="publish=0.25"), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while not list((killed / "_tmp").glob("*/_publish.json")) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # a few of the journal's actions are applied
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert list((killed / "_tmp").glob("*/_publish.json")), "the forget was not killed while applying its journal"
    assert (killed / "_lock.json").exists() and not (killed / "_retirements").exists()
    rerun = run_cli("forget", "--output", str(killed), "--users", users, env=_env(keyring))
    assert "nothing to forget" in rerun.stdout and "wrote the report" in rerun.stdout
    assert not (killed / "_tmp").exists() and not (killed / "_lock.json").exists()
    assert _comparable(keyring, killed) == _comparable(keyring, clean)
    [record] = [json.loads(p.read_text()) for p in (killed / "_retirements").iterdir()]
    assert record["report"] == "regenerated" and (killed / "report.html").exists()


@pytest.mark.slow
def test_forget_in_avro_partitions_and_a_package_nobody_can_decrypt(tmp_path, keyring):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "tracking.log-1").write_text("\n".join(_crafted_lines()) + "\n")
    (tmp_path / "retired.csv").write_text(USERS_CSV)
    out = tmp_path / "out"
    run_cli("run", "--input", str(logs / "*"), "--output", str(out), "--format", "avro", "--max-reject-ratio", "0.5")
    before, tree = _contents(keyring, out), _tree(out)
    forget = ["forget", "--output", str(out), "--users", str(tmp_path / "retired.csv")]
    unreachable = run_cli(*forget, "--warehouse", "postgresql://u:secret@127.0.0.1:1/x", check=False)
    assert unreachable.returncode == 1 and "nothing was changed" in unreachable.stderr and "secret" not in unreachable.stderr
    assert _tree(out) == tree
    result = run_cli(*forget)
    after = _contents(keyring, out)
    assert _traces(after) == [] and "warehouse research" in result.stdout
    expected, removed = _expected_without_retired(before)
    assert removed and all(after.get(rel) == kept for rel, kept in expected.items())
    assert any(rel.endswith(".avro") for rel in expected)

    # An org encrypted only to a key whose secret is elsewhere: forget stops before changing anything.
    elsewhere = make_gnupg_home()
    try:
        _fpr, stranger_key = generate_key(elsewhere, "Partner", "partner@example.org")
        (tmp_path / "orgs.yaml").write_text(f"orgs:\n  MITx: {{recipients: [{stranger_key}]}}\n")
        (tmp_path / "trackpipe.yaml").write_text("orgs_file: orgs.yaml\n")
        sealed = tmp_path / "sealed"
        run_cli(
            "run",
            "--input",
            str(logs / "*"),
            "--output",
            str(sealed),
            "--config",
            str(tmp_path / "trackpipe.yaml"),
            "--max-reject-ratio",
            "0.5",
        )
    finally:
        kill_gpg_agent(elsewhere)
        shutil.rmtree(elsewhere, ignore_errors=True)
    tree = _tree(sealed)
    failed = run_cli("forget", "--output", str(sealed), "--users", str(tmp_path / "retired.csv"), env=_env(keyring), check=False)
    assert failed.returncode == 1 and failed.stderr.count("\n") == 1
    assert "research_package/mitx/edx/events/2026/mitx-edx-events-2026-11-02.log.gz.gpg" in failed.stderr
    assert "secret key" in failed.stderr and "nothing was changed" in failed.stderr
    assert _tree(sealed) == tree


@pytest.mark.slow
def test_forget_in_pseudonymised_packages_needs_their_key(tmp_path):
    key = "k3y-for-tests-only-0123456789abcdef"
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "tracking.log-1").write_text("\n".join(_crafted_lines()) + "\n")
    (tmp_path / "retired.csv").write_text(USERS_CSV)
    (tmp_path / "orgs.yaml").write_text("orgs:\n  MITx: {pseudonymise: true}\n  HarvardX: {}\n")
    (tmp_path / "trackpipe.yaml").write_text("orgs_file: orgs.yaml\n")
    out = tmp_path / "out"
    with_key = {**os.environ, "TRACKPIPE_PSEUDONYM_KEY": key}
    without_key = {k: v for k, v in os.environ.items() if k != "TRACKPIPE_PSEUDONYM_KEY"}
    run_cli(
        "run",
        "--input",
        str(logs / "*"),
        "--output",
        str(out),
        "--config",
        str(tmp_path / "trackpipe.yaml"),
        "--max-reject-ratio",
        "0.5",
        env=with_key,
    )
    forget = ["forget", "--output", str(out), "--users", str(tmp_path / "retired.csv")]
    tree = _tree(out)
    failed = run_cli(*forget, env=without_key, check=False)
    assert failed.returncode == 1 and "research_package/mitx/" in failed.stderr and "pseudonymised" in failed.stderr
    assert _tree(out) == tree
    package = out / "research_package/mitx/edx/events/2026/mitx-edx-events-2026-11-02.log.gz"
    pseudonyms = Pseudonymiser(key.encode(), "mitx")
    tokens = [pseudonyms.username(n) for n in RETIRED_NAMES] + [str(pseudonyms.user_id(i)) for i in RETIRED_IDS]
    before = gzip.decompress(package.read_bytes()).decode().splitlines()
    kept = [line for line in before if not any(t in line for t in tokens)]
    assert 0 < len(kept) < len(before) and all('"username":"pu_' in line for line in kept)
    run_cli(*forget, env=with_key)
    assert gzip.decompress(package.read_bytes()).decode().splitlines() == kept


def _days(url: str) -> set[tuple[str, str]]:
    return {(r["stream"], str(r["dt"])[:10]) for r in _warehouse_rows(url)}


@pytest.mark.slow
@pytest.mark.postgres
def test_expire_removes_exactly_the_old_days(published, keyring, tmp_path, pg_url):
    out = _copy(published, tmp_path)
    duck = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    for url in (duck, pg_url):
        run_cli("load", "--output", str(out), "--warehouse", url)
    run_cli("report", str(out))
    config = tmp_path / "retention.yaml"
    config.write_text("retention: {warehouse_days: 3, duplicates_days: 2, packages_days: 3}\n")
    expire = ["expire", "--output", str(out), "--config", str(config), "--today", "2026-11-05", "--warehouse", duck, "--warehouse", pg_url]
    files_before, tree = set(_tree(out)), _tree(out)
    days_before = {url: _days(url) for url in (duck, pg_url)}
    dry = run_cli(*expire, "--dry-run")
    assert "would remove warehouse/research/dt=2026-11-02" in dry.stdout and _tree(out) == tree
    assert {url: _days(url) for url in (duck, pg_url)} == days_before

    result = run_cli(*expire)
    files_after = set(_tree(out))
    removed = files_before - files_after
    old = {
        f
        for f in files_before
        if f.startswith(("warehouse/research/dt=2026-11-02/", "warehouse/internal_bi/dt=2026-11-02/", "duplicates/dt=2026-11-02/"))
        or f.startswith("duplicates/dt=2026-11-03/")
        or (f.startswith("research_package/") and "2026-11-02" in f)
    }
    assert old and removed == old
    assert not (out / "warehouse" / "research" / "dt=2026-11-02").exists() and (out / "warehouse" / "research" / "dt=2026-11-03").exists()
    assert (out / "duplicates" / "dt=2026-11-04").exists() and (out / "_runs").exists()
    for url in (duck, pg_url):
        assert _days(url) == {d for d in days_before[url] if d[1] >= "2026-11-03"}
        assert {(stream, dt, n, checksum[:8]) for _id, stream, dt, n, checksum in _loads(url, "expire-")} == {
            ("research", "2026-11-02", 0, "e3b0c442"),
            ("internal_bi", "2026-11-02", 0, "e3b0c442"),
        }
    [line] = (out / "_expirations.jsonl").read_text().splitlines()
    entry = json.loads(line)
    assert (
        entry["today"] == "2026-11-05"
        and entry["keep_from"]["warehouse"] == "2026-11-03"
        and entry["keep_from"]["duplicates"] == "2026-11-04"
    )
    assert all(w["status"] == "done" for w in entry["warehouses"]) and "removed warehouse/research/dt=2026-11-02" in result.stdout
    m = manifest(out)
    assert m["reconciliation"]["balanced"] and m["reconciliation"]["expired"] > 0 and m["expirations"] == [entry["expiration_id"]]
    from trackpipe.report.data import gather

    assert gather(str(out)).notes == []
    # Nothing more to remove the same day; a load does not bring the days back.
    assert "nothing to expire" in run_cli(*expire).stdout and len((out / "_expirations.jsonl").read_text().splitlines()) == 1
    run_cli("load", "--output", str(out), "--warehouse", duck)
    assert _days(duck) == {d for d in days_before[duck] if d[1] >= "2026-11-03"}

    # Run records go by the day their run started.
    run_day = _dt.date.fromisoformat(m["started_at"][:10])
    config.write_text("retention: {runs_days: 2}\n")
    keep = run_cli("expire", "--output", str(out), "--config", str(config), "--today", (run_day + _dt.timedelta(days=1)).isoformat())
    assert "nothing to expire" in keep.stdout and list((out / "_runs").iterdir())
    gone = run_cli("expire", "--output", str(out), "--config", str(config), "--today", (run_day + _dt.timedelta(days=2)).isoformat())
    assert f"removed the records of run {m['run_id']}" in gone.stdout and not list((out / "_runs").glob("*"))
    assert (out / "_manifest.json").exists() and len((out / "_expirations.jsonl").read_text().splitlines()) == 2


def test_the_note_about_an_unnamed_default_warehouse_knows_the_file_however_it_is_written(tmp_path, monkeypatch):
    from trackpipe.privacy.jobs import default_duckdb_note

    out = tmp_path / "out"
    out.mkdir()
    (out / "warehouse.duckdb").write_bytes(b"")
    assert "was not named" in default_duckdb_note(str(out), [])
    assert "was not named" in default_duckdb_note(str(out), [f"duckdb:///{tmp_path}/other.duckdb"])
    monkeypatch.chdir(tmp_path)
    for url in (f"duckdb://{out}/warehouse.duckdb", f"duckdb:///{out}/warehouse.duckdb", "duckdb://out/warehouse.duckdb"):
        assert default_duckdb_note(str(out), [url]) is None, url
