"""Event content is untrusted: a value from an event never becomes a path outside the output,
SQL, a command argument or unescaped HTML, and no single event can fail a run.

Any learner can put any string into a browser event (the org of a browser event comes from the
page URL the browser sent), so every case below is one a learner can produce.
"""

from __future__ import annotations

import html
import json
import os
import sys
from pathlib import Path

import pyarrow.dataset as ds
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import files_under, manifest, run_cli
from trackpipe import storage
from trackpipe.config import load_orgs
from trackpipe.errors import ConfigError, UnsafePathError
from trackpipe.events.orgs import MAX_ORG_CHARS, package_name
from trackpipe.events.times import parse_time_us
from trackpipe.report.data import org_example
from trackpipe.storage.journal import apply_plan
from trackpipe.storage.workdir import WorkDir

DAY = "2025-03-14"

# The orgs of issue #14: each one wrote outside the output, made odd folders, or failed the run.
HOSTILE_ORGS = [
    "/abs/olute",
    "../../../../tmp/x/pwned1",
    "..",
    ".",
    "a/b",
    "con\nnewline",
    "_tmp",
    ".hidden",
    "a\u0000b",
    "x" * 300,
    "M\u0130Tx",  # MİTx: Unicode lower-casing adds a combining dot
    "\u212aorg",  # Kelvin sign: Unicode lower-cases it to an ASCII k
    "-rf",
    "~root",
    "a..b",
    "<script>alert(1)</script>",
    "a\\b",
    "\x1b[31mred",
    "x" * (MAX_ORG_CHARS + 1),
]
SAFE_ORGS = {
    "MITx": "mitx",
    "HarvardX": "harvardx",
    "UC.BerkeleyX": "uc.berkeleyx",
    "edX": "edx",
    "Open_Univ-X~1": "open_univ-x~1",
    "2U": "2u",
}


# --- tier 1: the rules ---------------------------------------------------------------------------


@pytest.mark.parametrize("org", HOSTILE_ORGS)
def test_an_org_without_a_safe_form_gets_no_package_name(org):
    assert package_name(org) is None


def test_safe_orgs_are_lower_cased_in_ascii():
    for org, name in SAFE_ORGS.items():
        assert package_name(org) == name
    assert package_name("x" * MAX_ORG_CHARS) == "x" * MAX_ORG_CHARS
    assert package_name(None) is None and package_name(42) is None


@pytest.mark.parametrize("part", ["..", ".", "", "a/b", "/abs", "a\x00b", "a\nb", "x" * 256, "a\\b"])
def test_the_work_folder_refuses_any_part_that_is_not_a_plain_name(tmp_path, part):
    workdir = WorkDir(str(tmp_path / "out"), "run1")
    with pytest.raises(UnsafePathError):
        workdir.path("research_package", part, "file")
    with pytest.raises(UnsafePathError):
        workdir.scratch_path(part)


@pytest.mark.parametrize(
    "path, root, inside",
    [
        ("/out/a/b", "/out", True),
        ("/out/../etc/passwd", "/out", False),
        ("/outside", "/out", False),
        ("/out", "/out", False),
        ("s3://bucket/out/a/b", "s3://bucket/out", True),
        ("s3://bucket/out/../x", "s3://bucket/out", False),
        ("s3://bucket/out//x", "s3://bucket/out", False),
        ("s3://bucket/outside/x", "s3://bucket/out", False),
        ("gs://bucket/out/./x", "gs://bucket/out", False),
        ("/out/x", "s3://bucket/out", False),
    ],
)
def test_paths_and_object_keys_are_checked_to_lie_inside_the_output(path, root, inside):
    if inside:
        assert storage.check_inside(path, root) == path
    else:
        with pytest.raises(UnsafePathError):
            storage.check_inside(path, root)


def test_a_publish_plan_that_leaves_the_output_moves_nothing(tmp_path):
    out, work = tmp_path / "out", tmp_path / "out" / "_tmp" / "run1"
    (work / "warehouse").mkdir(parents=True)
    staged = work / "warehouse" / "x.parquet"
    staged.write_text("rows")
    plan = {
        "run_id": "run1",
        "output": str(out),
        "workdir": str(work),
        "actions": [
            {"op": "move_file", "src": str(staged), "dst": str(out / "warehouse" / "x.parquet")},
            {"op": "write", "dst": str(tmp_path / "escaped.json"), "data": "{}"},
        ],
    }
    with pytest.raises(UnsafePathError):
        apply_plan(plan)
    assert staged.exists() and not (out / "warehouse" / "x.parquet").exists() and not (tmp_path / "escaped.json").exists()


@pytest.mark.parametrize("name", ["../evil", "a/b", ".hidden", "_tmp", "M\u0130Tx", "x" * 65])
def test_org_config_names_and_aliases_are_checked_at_start(tmp_path, name):
    config = tmp_path / "orgs.yaml"
    config.write_text(json.dumps({"orgs": {name: {}}}))
    with pytest.raises(ConfigError, match="org config key 'orgs'"):
        load_orgs(str(config))
    config.write_text(json.dumps({"orgs": {"MITx": {"other_names": [name]}}}))
    with pytest.raises(ConfigError, match="org config key 'orgs.MITx.other_names'"):
        load_orgs(str(config))


def test_times_no_date_can_hold_are_bad_times_not_crashes():
    assert parse_time_us("0001-01-01T00:00:00+14:00") is None
    assert parse_time_us("9999-12-31T23:59:59-14:00") is None
    assert parse_time_us("0001-01-01T00:00:00+00:00") is not None


# --- tier 3: whole runs ----------------------------------------------------------------------------


def _event(org_id, *, t=f"{DAY}T10:00:00+00:00", source="server", page=None, **fields) -> dict:
    obj = {
        "event_type": fields.pop("event_type", "problem_check"),
        "event_source": source,
        "username": fields.pop("username", "ann"),
        "session": fields.pop("session", "s1"),
        "time": t,
        "host": fields.pop("host", "courses.example.org"),
        "page": page,
        "context": {"org_id": org_id, "course_id": fields.pop("course_id", ""), "user_id": 7},
        "event": fields.pop("event", {"attempts": 1}),
    }
    obj.update(fields)
    return obj


NORMAL = [
    _event("MITx", course_id="course-v1:MITx+6.002x+1T2025", t=f"{DAY}T10:00:01+00:00"),
    _event("HarvardX", course_id="HarvardX/CS50/2025", t=f"{DAY}T11:00:00+00:00", username="bob"),
    _event("", course_id="course-v1:MITx+6.002x+1T2025", t=f"{DAY}T12:00:00+00:00", username="cy"),
]


def _hostile_events(escape_target: str) -> list[dict]:
    events = [_event(org, t=f"{DAY}T1{i % 10}:{i:02d}:00+00:00", username=f"u{i}") for i, org in enumerate([*HOSTILE_ORGS, escape_target])]
    # Browser events take the org from the page URL when the context has none.
    events.append(
        _event("", source="browser", page="https://courses.example.org/courses/course-v1:M\u0130Tx+C+R/courseware", username="p1")
    )
    events.append(_event("", source="browser", page="https://courses.example.org/courses/..%2F..%2Fetc/x/y", username="p2"))
    return events


def _write_log(folder: Path, events: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"tracking.log-{DAY.replace('-', '')}-1").write_text("".join(json.dumps(e) + "\n" for e in events))
    return folder


def _run(logs: Path, out: Path, *extra: str, check: bool = True):
    return run_cli("run", "--input", str(logs / "*"), "--output", str(out), *extra, check=check)


@pytest.mark.slow
def test_hostile_orgs_never_leave_the_output_nor_fail_the_run(tmp_path):
    out = tmp_path / "out"
    # A relative path that, used as a folder name under research_package/, lands in tmp_path.
    escape_target = os.path.relpath(tmp_path / "escaped" / "pwned1", out / "research_package")
    hostile = _hostile_events(escape_target)
    logs = _write_log(tmp_path / "logs", NORMAL + hostile)
    result = _run(logs, out)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs", "out"]  # nothing beside the output
    assert not Path("/abs").exists()
    assert sorted(p.name for p in (out / "research_package").iterdir()) == ["harvardx", "mitx"]
    for rel in files_under(out):
        assert all(storage.safe_component(part) for part in Path(rel).parts), rel
    m = manifest(out)
    assert m["reconciliation"]["balanced"] and m["lines_read"] == len(NORMAL) + len(hostile)
    left = m["research_package"]["left_out"]
    assert left["unsafe_org"] == len(hostile)
    examples = m["research_package"]["left_out_examples"]["unsafe_org"]
    assert 1 <= len(examples) <= 5 and all(len(e) <= 100 for e in examples)
    # The warehouse keeps every org exactly as logged.
    rows = ds.dataset(out / "warehouse" / "research", format="parquet", partitioning="hive").to_table().to_pylist()
    logged = {e["username"]: e["context"]["org_id"] for e in hostile if e["context"]["org_id"]}
    stored = {r["username"]: r["org_id"] for r in rows}
    assert {u: stored[u] for u in logged} == logged
    assert stored["p1"] == "M\u0130Tx" and stored["p2"] == ".."
    assert "unsafe" not in result.stderr

    # The normal orgs' packages are byte-for-byte those of a run without the hostile events.
    clean_out = tmp_path.parent / f"{tmp_path.name}-clean-out"
    _run(_write_log(tmp_path.parent / f"{tmp_path.name}-clean-logs", NORMAL), clean_out)
    for rel in files_under(clean_out / "research_package"):
        if rel.endswith(".log.gz"):
            assert (out / "research_package" / rel).read_bytes() == (clean_out / "research_package" / rel).read_bytes(), rel

    # The report lists a few of them, masked and escaped.
    run_cli("report", str(out))
    page = (out / "report.html").read_text()
    assert 'class="unsafe-orgs"' in page
    for example in examples:
        assert f"<li><code>{html.escape(org_example(example))}</code></li>" in page
    assert "\\x1b[31mred" in page  # the escape sequence is shown, not sent to a terminal
    assert "<script>alert(1)</script>" not in page
    assert "\x00" not in page and "\x1b" not in page


@pytest.mark.slow
def test_an_unsafe_org_config_stops_the_run_naming_the_key(tmp_path):
    logs = _write_log(tmp_path / "logs", NORMAL)
    (tmp_path / "orgs.yaml").write_text("orgs:\n  ../../evil: {}\n")
    (tmp_path / "trackpipe.yaml").write_text("orgs_file: orgs.yaml\n")
    result = _run(logs, tmp_path / "out", "--config", str(tmp_path / "trackpipe.yaml"), check=False)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "org config key 'orgs'" in result.stderr and "../../evil" in result.stderr
    assert not (tmp_path / "out").exists()


# Arbitrary text in every field that feeds a name somewhere (package folders, manifest keys,
# summary lines, report labels): the run succeeds, writes nothing outside OUT, and accounts for
# every line.
ANY_TEXT = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF, blacklist_categories=()), max_size=80)
FIELD_TEXT = st.one_of(
    ANY_TEXT,
    st.sampled_from(HOSTILE_ORGS),
    st.integers(1, 5).map(lambda n: "../" * n + "pwned"),
    st.integers(200, 70_000).map(lambda n: "x" * n),
)


@st.composite
def hostile_event(draw) -> dict:
    name = draw(FIELD_TEXT)
    return _event(
        draw(FIELD_TEXT),
        source=draw(st.one_of(st.sampled_from(["server", "browser", "mobile"]), FIELD_TEXT)),
        page=draw(st.one_of(st.none(), FIELD_TEXT, FIELD_TEXT.map(lambda t: f"https://x.org/courses/course-v1:{t}+C+R/x"))),
        event_type=draw(st.one_of(st.just("problem_check"), FIELD_TEXT.map(lambda t: t or "e"))),
        name=name,
        username=draw(FIELD_TEXT),
        host=draw(FIELD_TEXT),
        session=draw(FIELD_TEXT),
        course_id=draw(FIELD_TEXT),
        t=draw(st.sampled_from([f"{DAY}T10:00:00+00:00", f"{DAY}T10:00:01Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-01:00"])),
    )


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(hostile_event(), min_size=1, max_size=12))
def test_arbitrary_text_in_any_name_field_never_fails_a_run_nor_leaves_the_output(tmp_path_factory, events):
    from pipelines.tracking_logs import run

    base = tmp_path_factory.mktemp("hostile")
    logs = _write_log(base / "logs", NORMAL + events)
    out = base / "out"
    assert run(["--input", str(logs / "*"), "--output", str(out), "--quiet", "--max-reject-ratio", "1"]) == 0
    assert sorted(p.name for p in base.iterdir()) == ["logs", "out"]
    for rel in files_under(out):
        assert all(storage.safe_component(part) for part in Path(rel).parts), rel
    m = manifest(out)
    assert m["reconciliation"]["balanced"] and m["lines_read"] == len(NORMAL) + len(events)
    for name in os.listdir(out / "research_package"):
        assert package_name(name) == name


SQL_TEXT = [
    "x'); DROP TABLE research_events; --",
    "\\.\n\\.\r\n",
    'quote " and \\" and \\\\',
    "tab\there, comma, and $$dollar$$",
    "E'\\x41'",
]


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def hostile_warehouse_url(request, tmp_path):
    if request.param == "duckdb":
        return f"duckdb://{tmp_path / 'wh.duckdb'}"
    return request.getfixturevalue("pg_url")


@pytest.mark.slow
def test_values_reach_a_warehouse_as_data_never_as_sql(tmp_path, hostile_warehouse_url, capsys):
    from tests.test_warehouse import _load, assert_same_rows

    events = [
        _event(
            "MITx",
            t=f"{DAY}T10:0{i}:00+00:00",
            username=text,
            host=text,
            session=text,
            event_type=text,
            page=text,
            agent=text,
            event={"answer": text},
        )
        for i, text in enumerate(SQL_TEXT)
    ]
    out = tmp_path / "out"
    _run(_write_log(tmp_path / "logs", events), out, "--no-package")
    code, _stdout, stderr = _load(capsys, "--output", str(out), "--warehouse", hostile_warehouse_url)
    assert code == 0, stderr
    assert_same_rows(hostile_warehouse_url, out)  # every value, byte for byte, in its column


def test_the_lock_file_records_the_command_without_its_secrets(tmp_path, monkeypatch):
    """_lock.json says who holds the output; a warehouse password or an S3 secret given on the
    command line must not be written into the output folder with it."""
    from trackpipe.storage.lock import OutputLock

    argv = [
        "trackpipe",
        "run",
        "--load",
        "postgresql://etl:hunter2@db:5432/w",
        "--s3_secret_access_key",
        "K3Y",
        "--s3_secret_access_key=K3Y",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    with OutputLock(str(tmp_path), "r1"):
        text = (tmp_path / "_lock.json").read_text()
    assert "hunter2" not in text and "K3Y" not in text
    assert json.loads(text)["command"] == (
        "trackpipe run --load postgresql://etl:***@db:5432/w --s3_secret_access_key *** --s3_secret_access_key=***"
    )
