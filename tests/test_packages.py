"""Research data packages: layout, content, org config, encryption, manifests, reruns."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import files_under, manifest, run_cli
from tests.services import GpgError, generate_key, kill_gpg_agent, make_gnupg_home, run_gpg

pytestmark = pytest.mark.slow

DAY = "2026-11-02"


def _event(org_id="", course_id="", t="2026-11-02T10:00:00+00:00", **extra):
    obj = {
        "event_type": extra.pop("event_type", "problem_check"),
        "event_source": "server",
        "username": extra.pop("username", "ann"),
        "time": t,
        "host": extra.pop("host", "courses.example.org"),
        "context": {"org_id": org_id, "course_id": course_id, "user_id": 7},
        "event": extra.pop("event", {"attempts": 1}),
    }
    obj.update(extra)
    return json.dumps(obj)


def _logs(tmp_path: Path, lines: list[str]) -> Path:
    folder = tmp_path / "logs"
    folder.mkdir(exist_ok=True)
    (folder / "tracking.log-20261103-1").write_text("\n".join(lines) + "\n")
    return folder


def _run(logs: Path, out: Path, *extra: str, check: bool = True):
    return run_cli("run", "--input", str(logs / "*"), "--output", str(out), *extra, check=check)


def _package_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]


def _org_config(tmp_path: Path, text: str) -> str:
    (tmp_path / "orgs.yaml").write_text(text)
    config = tmp_path / "trackpipe.yaml"
    config.write_text("orgs_file: orgs.yaml\n")
    return str(config)


LINES = [
    _event("MITx", "course-v1:MITx+6.002x+2T2026", t="2026-11-02T10:00:02+00:00", username="b"),
    _event("MITx", "course-v1:MITx+6.002x+2T2026", t="2026-11-02T10:00:01+00:00", username="a"),
    _event("", "HarvardX/CS50/2026", t="2026-11-02T11:00:00+00:00"),
    _event("", "", page=None, event_type="/courses/course-v1:DelftX+X1+2026/courseware", t="2026-11-02T12:00:00+00:00"),
    _event("", "", event_type="/dashboard", t="2026-11-02T12:00:00+00:00"),  # no org: no package
    _event("MITx", "course-v1:MITx+6.002x+2T2026", event_type="edx.bi.course.upgrade", t="2026-11-02T13:00:00+00:00"),  # internal
    _event("MITx", "course-v1:MITx+6.002x+2T2026", event={"_export": False, "x": 1}, t="2026-11-02T14:00:00+00:00"),
    _event("mitx", "course-v1:mitx+Y+2026", t="2026-11-03T01:00:00+00:00"),  # next arrival day
]


def test_layout_names_and_content(tmp_path):
    out = tmp_path / "out"
    _run(_logs(tmp_path, LINES), out)
    names = files_under(out / "research_package")
    assert names == [
        "delftx/edx/events/2026/MANIFEST-2026-11-02.json",
        "delftx/edx/events/2026/delftx-edx-events-2026-11-02.log.gz",
        "harvardx/edx/events/2026/MANIFEST-2026-11-02.json",
        "harvardx/edx/events/2026/harvardx-edx-events-2026-11-02.log.gz",
        "mitx/edx/events/2026/MANIFEST-2026-11-02.json",
        "mitx/edx/events/2026/MANIFEST-2026-11-03.json",
        "mitx/edx/events/2026/mitx-edx-events-2026-11-02.log.gz",
        "mitx/edx/events/2026/mitx-edx-events-2026-11-03.log.gz",
    ]
    mitx = _package_lines(out / "research_package/mitx/edx/events/2026/mitx-edx-events-2026-11-02.log.gz")
    assert [e["username"] for e in mitx] == ["a", "b"]  # ordered by time; no BI event, no _export: false
    raw = gzip.decompress((out / "research_package/mitx/edx/events/2026/mitx-edx-events-2026-11-02.log.gz").read_bytes())
    assert raw.splitlines()[0] == LINES[1].encode()  # the JSON exactly as logged
    assert manifest(out)["research_package"]["left_out"] == {"export_false": 1, "no_org": 1, "unlisted_org": 0, "unsafe_org": 0}


def test_site_name_and_no_package(tmp_path):
    logs = _logs(tmp_path, LINES)
    out = tmp_path / "out"
    _run(logs, out, "--site", "edge")
    assert (out / "research_package/mitx/edge/events/2026/mitx-edge-events-2026-11-02.log.gz").exists()
    bare = tmp_path / "bare"
    _run(logs, bare, "--no-package")
    assert not (bare / "research_package").exists()
    assert manifest(bare)["research_package"] is None


def test_manifest_checksums_and_counts(tmp_path):
    out = tmp_path / "out"
    _run(_logs(tmp_path, LINES), out)
    folder = out / "research_package/mitx/edx/events/2026"
    pkg_manifest = json.loads((folder / "MANIFEST-2026-11-02.json").read_text())
    [entry] = pkg_manifest["files"]
    data = (folder / entry["name"]).read_bytes()
    assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert entry["bytes"] == len(data)
    assert entry["events"] == len(gzip.decompress(data).splitlines()) == 2
    assert pkg_manifest["org"] == "mitx" and pkg_manifest["date"] == DAY and pkg_manifest["encrypted_for"] == []


def test_org_config_aliases_shared_alias_and_excluded_hosts(tmp_path):
    lines = [
        _event("MITxPRO", "course-v1:MITxPRO+P1+2026", t="2026-11-02T10:00:00+00:00"),
        _event("Shared", "course-v1:Shared+S1+2026", t="2026-11-02T10:00:01+00:00"),
        _event("HarvardX", "course-v1:HarvardX+H1+2026", t="2026-11-02T10:00:02+00:00"),
        _event("HarvardX", "course-v1:HarvardX+H1+2026", t="2026-11-02T10:00:03+00:00", host="studio.example.org"),
        _event("DelftX", "course-v1:DelftX+D1+2026", t="2026-11-02T10:00:04+00:00"),  # not listed
    ]
    config = _org_config(
        tmp_path,
        "exclude_hosts: ['studio\\.example\\.org']\norgs:\n  MITx: {other_names: [mitxpro, SHARED]}\n  HarvardX: {other_names: [shared]}\n",
    )
    out = tmp_path / "out"
    _run(_logs(tmp_path, lines), out, "--config", config)
    mitx = _package_lines(out / "research_package/mitx/edx/events/2026/mitx-edx-events-2026-11-02.log.gz")
    harvard = _package_lines(out / "research_package/harvardx/edx/events/2026/harvardx-edx-events-2026-11-02.log.gz")
    assert [e["context"]["org_id"] for e in mitx] == ["MITxPRO", "Shared"]
    assert [e["context"]["org_id"] for e in harvard] == ["Shared", "HarvardX"]  # the Studio event is left out
    assert not (out / "research_package/delftx").exists()
    assert not (out / "research_package/mitxpro").exists()
    left_out = manifest(out)["research_package"]["left_out"]
    assert left_out["excluded_host"] == 1 and left_out["unlisted_org"] == 1


def test_the_empty_host_pattern_drops_worker_events_but_not_events_without_a_host(tmp_path):
    """edX's rule: drop Studio events and events with an empty host (from worker processes)."""
    lines = [
        _event("MITx", "course-v1:MITx+A+2026", t="2026-11-02T10:00:00+00:00", host="courses.example.org"),
        _event("MITx", "course-v1:MITx+A+2026", t="2026-11-02T10:00:01+00:00", host=""),  # a worker process
        _event("MITx", "course-v1:MITx+A+2026", t="2026-11-02T10:00:02+00:00", host="STUDIO.example.org"),
        _event("MITx", "course-v1:MITx+A+2026", t="2026-11-02T10:00:03+00:00"),
    ]
    no_host = json.loads(lines[3])
    del no_host["host"]
    lines[3] = json.dumps(no_host)
    config = _org_config(tmp_path, "exclude_hosts: ['studio\\.example\\.org', '']\norgs:\n  MITx: {}\n")
    out = tmp_path / "out"
    _run(_logs(tmp_path, lines), out, "--config", config)
    mitx = _package_lines(out / "research_package/mitx/edx/events/2026/mitx-edx-events-2026-11-02.log.gz")
    assert [e.get("host", "<none>") for e in mitx] == ["courses.example.org", "<none>"]
    assert manifest(out)["research_package"]["left_out"]["excluded_host"] == 2


def test_encryption_to_two_recipients_and_a_master_key(tmp_path, gpg_keys):
    alice, alice_key = gpg_keys.generate("Alice", "alice@mitx.example")
    bob, bob_key = gpg_keys.generate("Bob", "bob@mitx.example")
    master, master_key = gpg_keys.generate("Research", "research@edx.example")
    config = _org_config(
        tmp_path,
        f"master_recipients: [{master_key}]\norgs:\n  MITx: {{recipients: [{alice_key}, {bob}]}}\n  HarvardX: {{}}\n",
    )
    logs = _logs(tmp_path, LINES)
    plain = tmp_path / "plain"
    _run(logs, plain)
    out = tmp_path / "out"
    env = {**os.environ, **gpg_keys.env()}
    result = run_cli("run", "--input", str(logs / "*"), "--output", str(out), "--config", config, env=env)
    assert result.returncode == 0
    folder = out / "research_package/mitx/edx/events/2026"
    assert sorted(p.name for p in folder.iterdir()) == [
        "MANIFEST-2026-11-02.json",
        "MANIFEST-2026-11-03.json",
        "mitx-edx-events-2026-11-02.log.gz.gpg",
        "mitx-edx-events-2026-11-03.log.gz.gpg",
    ]
    encrypted = folder / "mitx-edx-events-2026-11-02.log.gz.gpg"
    recipients = (
        gpg_keys.gpg("--list-packets", str(encrypted)).stdout.decode() + gpg_keys.gpg("--list-packets", str(encrypted)).stderr.decode()
    )
    decrypted = gpg_keys.gpg("--decrypt", str(encrypted)).stdout
    expected = (plain / "research_package/mitx/edx/events/2026/mitx-edx-events-2026-11-02.log.gz").read_bytes()
    assert gzip.decompress(decrypted) == gzip.decompress(expected)
    pkg_manifest = json.loads((folder / "MANIFEST-2026-11-02.json").read_text())
    assert sorted(pkg_manifest["encrypted_for"]) == sorted({alice, bob, master})
    assert pkg_manifest["files"][0]["sha256"] == hashlib.sha256(encrypted.read_bytes()).hexdigest()
    assert recipients.count("pubkey enc packet") == 3
    # HarvardX has no own recipients: encrypted to the master key only
    harvard = list((out / "research_package/harvardx/edx/events/2026").glob("*.gpg"))
    assert len(harvard) == 1


def test_each_recipient_can_decrypt_alone(tmp_path, gpg_keys):
    """Alice's secret key, alone in her keyring, decrypts her org's file; a stranger cannot."""
    alice_home = make_gnupg_home()
    try:
        _alice, alice_key = generate_key(alice_home, "Alice", "alice@x.example")
        gpg_keys.generate("Stranger", "stranger@x.example")
        config = _org_config(tmp_path, f"orgs:\n  MITx: {{recipients: [{alice_key}]}}\n")
        out = tmp_path / "out"
        _run(_logs(tmp_path, LINES), out, "--config", config)
        encrypted = out / "research_package/mitx/edx/events/2026/mitx-edx-events-2026-11-02.log.gz.gpg"
        decrypted = run_gpg(alice_home, "--decrypt", str(encrypted)).stdout
        assert len(gzip.decompress(decrypted).splitlines()) == 2
        with pytest.raises(GpgError, match="decrypt"):
            gpg_keys.gpg("--decrypt", str(encrypted))
    finally:
        kill_gpg_agent(alice_home)
        shutil.rmtree(alice_home, ignore_errors=True)


@pytest.mark.parametrize(
    "recipient, message",
    [
        ("keys/missing.asc", "neither an existing key file nor a key fingerprint"),
        ("garbage.asc", "not a valid public key file"),
        ("0123456789ABCDEF0123456789ABCDEF01234567", "no usable public key with that id"),
    ],
)
def test_missing_or_invalid_key_fails_before_anything_is_written(tmp_path, recipient, message):
    (tmp_path / "garbage.asc").write_text("this is not a key\n")
    config = _org_config(tmp_path, f"orgs:\n  MITx: {{recipients: [{recipient}]}}\n")
    out = tmp_path / "out"
    result = _run(_logs(tmp_path, LINES), out, "--config", config, check=False)
    assert result.returncode != 0
    assert message in result.stderr and "MITx".lower() in result.stderr.lower()
    assert result.stderr.strip().count("\n") == 0
    assert not out.exists() or not any(out.iterdir())


def test_rerun_gives_identical_bytes_and_replaces_the_days_packages(tmp_path):
    logs = _logs(tmp_path, LINES)
    out = tmp_path / "out"
    _run(logs, out)
    before = {p: (out / "research_package" / p).read_bytes() for p in files_under(out / "research_package")}
    _run(logs, out)
    assert {p: (out / "research_package" / p).read_bytes() for p in files_under(out / "research_package")} == before
    # The next run of 2026-11-02 has no DelftX event any more: its package for that day goes.
    _logs(tmp_path, [line for line in LINES if "DelftX" not in line])
    _run(logs, out, "--date", DAY)
    names = files_under(out / "research_package")
    assert not [n for n in names if n.startswith("delftx/")]
    assert "mitx/edx/events/2026/mitx-edx-events-2026-11-03.log.gz" in names  # another day: untouched
