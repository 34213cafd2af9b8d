"""GCS end to end on a real GCS API server (fake-gcs-server on 127.0.0.1, tests/gcs_services.py):
input and output in a bucket, as on Dataflow. The gs:// twin of tests/test_s3.py.

Output file names hash the input's path (`part-<digest of the path>-<chunk>`), and the rows
carry it (`source_file`, `source`), so a gs:// run and a local run cannot be byte-identical in
their warehouse, duplicates and rejects files; they are compared file by file with the path
mapped (same rows, same values, same order), and research packages, which name no path, byte for
byte.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import ROOT, files_under, manifest, run_cli
from trackpipe.generator.generate import generate

pytestmark = [pytest.mark.slow, pytest.mark.gcs]

COUNTS = ("lines_read", "blank_lines", "rejected", "duplicates_removed", "rows_written", "reconciliation", "dates")
GLOB = "tracking/**/tracking.log-*.gz"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The generated 20k-event corpus and an in-memory DirectRunner run on it, on local disk."""
    base = tmp_path_factory.mktemp("gcscorpus")
    generate(str(base), 20_000, seed=3, days=2, files=3)
    out = base / "local-out"
    run_cli("run", "--input", str(base / "logs" / GLOB), "--output", str(out), "--direct_running_mode=in_memory")
    return base, out


def _upload(client, bucket: str, folder: Path, prefix: str) -> int:
    target = client.bucket(bucket)
    count = 0
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            target.blob(f"{prefix}/{path.relative_to(folder)}").upload_from_filename(str(path))
            count += 1
    return count


def _download(client, bucket: str, prefix: str, dest: Path) -> list[str]:
    keys = []
    for blob in client.list_blobs(bucket, prefix=prefix + "/"):
        rel = blob.name[len(prefix) + 1 :]
        keys.append(rel)
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        blob.download_to_filename(str(target))
    return sorted(keys)


def _keys(client, bucket: str, prefix: str) -> list[str]:
    return sorted(blob.name for blob in client.list_blobs(bucket, prefix=prefix))


def _env(gcs_server) -> dict:
    """The environment of a gs:// run: the server's STORAGE_EMULATOR_HOST, no other store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GOOGLE_", "STORAGE_EMULATOR", "CLOUDSDK_"))}
    return {**env, **gcs_server.env()}


def _digest(path: str) -> str:
    return hashlib.sha1(path.encode("utf-8")).hexdigest()[:16]  # as trackpipe.events.chunks.chunk_key


def _contents(out: Path, root: str, inputs: list[str], by_file: bool = True) -> dict:
    """Every warehouse, duplicates and rejects file of an output as comparable content: input
    paths made relative to `root` (in file names and in the rows). `by_file=False` merges each
    folder's files (for runs that cut the input into other chunks)."""
    names = {_digest(root + rel): _digest(rel) for rel in inputs}
    found: dict = {}
    for folder in ("warehouse", "duplicates", "rejects"):
        for path in sorted((out / folder).rglob("*")):
            if not path.is_file():
                continue
            rel = str(path.relative_to(out))
            if by_file:
                digest = path.name.split("-")[1]
                key = rel.replace(digest, names[digest])
            else:
                key = str(path.parent.relative_to(out))
            if path.name.endswith(".parquet"):
                table = pq.read_table(path)
                for column in ("source_file", "source"):
                    if column in table.column_names:
                        values = [v[len(root) :] if v and v.startswith(root) else v for v in table.column(column).to_pylist()]
                        table = table.set_column(
                            table.column_names.index(column), column, pa.array(values, table.schema.field(column).type)
                        )
                found.setdefault(key, []).append(table)
            else:
                records = [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]
                for record in records:
                    record["source"] = record["source"][len(root) :]
                found.setdefault(key, []).append(records)
    merged = {}
    for key, parts in found.items():
        if isinstance(parts[0], list):
            merged[key] = sorted((r for part in parts for r in part), key=lambda r: (r["source"], r["line_number"]))
        else:
            table = pa.concat_tables(parts)
            merged[key] = (
                table
                if by_file
                else table.sort_by([(c, "ascending") for c in ("event_id", "source", "line_number") if c in table.column_names])
            )
    return merged


def _inputs(base: Path) -> list[str]:
    return [str(p.relative_to(base / "logs")) for p in sorted((base / "logs").rglob("*.gz"))]


def _assert_same_outputs(got: Path, local_out: Path, base: Path, bucket: str, by_file: bool = True) -> None:
    inputs = _inputs(base)
    mine = _contents(got, f"gs://{bucket}/logs/", inputs, by_file)
    theirs = _contents(local_out, str(base / "logs") + "/", inputs, by_file)
    assert sorted(mine) == sorted(theirs)
    for key, value in theirs.items():
        assert mine[key] == value if isinstance(value, list) else mine[key].equals(value), key
    for rel in files_under(local_out / "research_package"):  # unencrypted packages: byte for byte
        assert (got / "research_package" / rel).read_bytes() == (local_out / "research_package" / rel).read_bytes(), rel
    gcs_manifest, local_manifest = manifest(got), manifest(local_out)
    for key in COUNTS:
        assert gcs_manifest[key] == local_manifest[key], key
    assert all(i["path"].startswith(f"gs://{bucket}/logs/tracking/") for i in gcs_manifest["inputs"])
    assert len(gcs_manifest["inputs"]) == len(local_manifest["inputs"])


def test_input_and_output_on_gcs_match_the_local_run(gcs_server, gcs_bucket, corpus, tmp_path):
    base, local_out = corpus
    client = gcs_server.client()
    _upload(client, gcs_bucket, base / "logs", "logs")
    result = run_cli("run", "--input", f"gs://{gcs_bucket}/logs/{GLOB}", "--output", f"gs://{gcs_bucket}/out/", env=_env(gcs_server))
    assert f"gs://{gcs_bucket}/out/_manifest.json" in result.stdout
    got = tmp_path / "got"
    keys = _download(client, gcs_bucket, "out", got)
    assert not [k for k in keys if k.startswith("_tmp/") or k == "_lock.json"]  # nothing temporary left
    _assert_same_outputs(got, local_out, base, gcs_bucket)


def test_big_files_are_read_in_ranges_from_gcs(gcs_server, gcs_bucket, corpus, tmp_path):
    """`read.split_bytes: 1 MiB` and the scratch folder in the bucket (as on Dataflow): each gzip
    input is decompressed into gs://.../scratch, read back in 1 MiB ranges (seek + ranged
    reads), staged as Arrow files there and read back by range; the rows are those of the local
    run."""
    base, local_out = corpus
    client = gcs_server.client()
    _upload(client, gcs_bucket, base / "logs", "logs")
    config = tmp_path / "split.yaml"
    config.write_text("read:\n  split_bytes: 1048576\n")
    run_cli(
        "run",
        "--input",
        f"gs://{gcs_bucket}/logs/{GLOB}",
        "--output",
        f"gs://{gcs_bucket}/out",
        "--config",
        str(config),
        "--scratch-dir",
        f"gs://{gcs_bucket}/scratch",
        env=_env(gcs_server),
    )
    got = tmp_path / "got"
    _download(client, gcs_bucket, "out", got)
    ranged = {i["path"].rsplit("/", 1)[1]: i["chunks"] for i in manifest(got)["inputs"]}
    whole = {i["path"].rsplit("/", 1)[1]: i["chunks"] for i in manifest(local_out)["inputs"]}
    big = [i["path"].rsplit("/", 1)[1] for i in manifest(local_out)["inputs"] if i["bytes"] > 1024 * 1024]
    assert len(big) == 4 and all(whole[name] == 1 and ranged[name] >= 4 for name in big)  # one chunk per range
    assert _keys(client, gcs_bucket, "scratch/") == []  # the run's scratch objects are gone
    _assert_same_outputs(got, local_out, base, gcs_bucket, by_file=False)


def test_globs_select_objects_like_local_globs(gcs_server, gcs_bucket, tmp_path, monkeypatch):
    from trackpipe import storage

    for key, value in gcs_server.env().items():
        monkeypatch.setenv(key, value)
    for name in ["a/x1.gz", "a/y2.log", "a/b/y3.log", "a/b/c/y4.log", "a/b/z.log", "b/y5.log"]:
        storage.write_bytes(f"gs://{gcs_bucket}/{name}", name.encode())
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(name.encode())
    gcs_server.client().bucket(gcs_bucket).blob("a/b/folder/").upload_from_string(b"")  # a folder marker is no file
    (tmp_path / "a/b/folder").mkdir()
    for pattern in ("a/**/*.log", "**/y?.log", "a/[xy]*", "a/b/*", "a/*/c/*", "a/y2.log", "a/nothing*", "**"):
        on_gcs = [(p[len(f"gs://{gcs_bucket}/") :], size) for p, size in storage.match(f"gs://{gcs_bucket}/{pattern}")]
        local = [(str(Path(p).relative_to(tmp_path)), size) for p, size in storage.match(str(tmp_path / pattern))]
        assert on_gcs == local, pattern
    assert storage.exists(f"gs://{gcs_bucket}/a/b") and not storage.exists(f"gs://{gcs_bucket}/a/nothing")
    assert storage.file_sizes(f"gs://{gcs_bucket}/a/b/c") == {f"gs://{gcs_bucket}/a/b/c/y4.log": len(b"a/b/c/y4.log")}


def test_a_run_takes_exactly_the_globbed_inputs(gcs_server, gcs_bucket, corpus):
    base, _ = corpus
    client = gcs_server.client()
    _upload(client, gcs_bucket, base / "logs", "logs")
    env = _env(gcs_server)
    patterns = [
        f"gs://{gcs_bucket}/logs/tracking/prod-edx-worker/*/tracking.log-2026110?-*.gz",
        f"gs://{gcs_bucket}/logs/**/tracking.log-2026110[3]-*",
    ]
    run_cli("run", *[a for p in patterns for a in ("--input", p)], "--output", f"gs://{gcs_bucket}/out", "--no-package", env=env)
    got = json.loads(client.bucket(gcs_bucket).blob("out/_manifest.json").download_as_bytes())
    inputs = sorted(i["path"][len(f"gs://{gcs_bucket}/logs/") :] for i in got["inputs"])
    want = sorted({r for r in _inputs(base) if r.startswith("tracking/prod-edx-worker/") or "/tracking.log-20261103-" in r})
    assert inputs == want and len(want) < len(_inputs(base))


def test_the_lock_on_gcs_is_a_conditional_create_and_refuses_a_second_run(gcs_server, gcs_bucket, corpus, monkeypatch):
    from trackpipe.storage.lock import create_exclusive

    base, _ = corpus
    client = gcs_server.client()
    for key, value in gcs_server.env().items():
        monkeypatch.setenv(key, value)
    url = f"gs://{gcs_bucket}/elsewhere/_lock.json"
    assert create_exclusive(url, b"first")
    assert not create_exclusive(url, b"second")  # ifGenerationMatch=0: the server refuses
    assert client.bucket(gcs_bucket).blob("elsewhere/_lock.json").download_as_bytes() == b"first"

    client.bucket(gcs_bucket).blob("in/tracking.log-1.gz").upload_from_filename(str(sorted((base / "logs").rglob("*.gz"))[-1]))
    owner = {"run_id": "other-run", "host": socket.gethostname(), "pid": os.getpid(), "started_at": "2026-11-25T10:00:00+00:00"}
    client.bucket(gcs_bucket).blob("out/_lock.json").upload_from_string(json.dumps(owner))
    result = run_cli(
        "run", "--input", f"gs://{gcs_bucket}/in/*.gz", "--output", f"gs://{gcs_bucket}/out", env=_env(gcs_server), check=False
    )
    assert result.returncode != 0 and "in use by run other-run" in result.stderr
    assert _keys(client, gcs_bucket, "out/") == ["out/_lock.json"]


def test_a_publish_killed_midway_is_finished_from_its_journal(gcs_server, gcs_bucket, corpus, tmp_path):
    """SIGKILL while the publish journal is applied (object stores have no rename: a partition is
    copied, then stale objects deleted); `trackpipe load` takes over the dead run's lock, replays
    the journal and loads: the output is exactly a clean run's."""
    base, local_out = corpus
    client = gcs_server.client()
    _upload(client, gcs_bucket, base / "logs", "logs")
    command = [
        sys.executable,
        "-m",
        "trackpipe.cli",
        "run",
        "--input",
        f"gs://{gcs_bucket}/logs/{GLOB}",
        "--output",
        f"gs://{gcs_bucket}/out",
    ]
    env = {**_env(gcs_server), "TRACKPIPE_TEST_PAUSE": "publish=0.3"}
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not [k for k in _keys(client, gcs_bucket, "out/_tmp/") if k.endswith("/_publish.json")]:
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended before publishing"
            time.sleep(0.05)
        time.sleep(1.0)  # a few actions in
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert "out/_manifest.json" not in _keys(client, gcs_bucket, "out/")  # the manifest comes last
    loaded = run_cli("load", "--output", f"gs://{gcs_bucket}/out", "--warehouse", f"duckdb:///{tmp_path}/w.duckdb", env=_env(gcs_server))
    assert "loaded" in loaded.stdout
    got = tmp_path / "got"
    keys = _download(client, gcs_bucket, "out", got)
    assert not [k for k in keys if k.startswith("_tmp/") or k == "_lock.json"]
    _assert_same_outputs(got, local_out, base, gcs_bucket)


def _service_account_key(folder: Path, token_uri: str) -> Path:
    """A well-formed service-account key whose token requests go to `token_uri`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    key = {
        "type": "service_account",
        "project_id": "trackpipe-test",
        "private_key_id": "0" * 40,
        "private_key": pem,
        "client_email": "runner@trackpipe-test.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }
    path = folder / "key.json"
    path.write_text(json.dumps(key))
    return path


def _without_local_server(env: dict, home: Path) -> dict:
    """Google's own endpoint and Application Default Credentials only: no emulator, no gcloud
    login, and a metadata server that is not there (never the real 169.254.169.254)."""
    env = {k: v for k, v in env.items() if k != "STORAGE_EMULATOR_HOST"}
    dead = "127.0.0.1:9"
    return {
        **env,
        "HOME": str(home),
        "CLOUDSDK_CONFIG": str(home),
        "NO_GCE_CHECK": "true",
        "GCE_METADATA_HOST": dead,
        "GCE_METADATA_IP": dead,
        "GCE_METADATA_ROOT": dead,
    }


CASES = {
    "missing output bucket": "bucket 'no-such-bucket-here' does not exist",
    "missing input bucket": "bucket 'no-such-input-bucket' does not exist",
    "refused credentials": "Cloud Storage refused the credentials",
    "missing credentials": "no Google credentials",
    "unreachable endpoint": "cannot reach http://127.0.0.1:9",
}


@pytest.mark.parametrize("case", list(CASES))
def test_gcs_errors_are_one_clear_line_and_write_nothing(gcs_server, gcs_bucket, corpus, tmp_path, case):
    """For `run`, `load` and `report` alike. Refused credentials: a service-account key whose
    token request is refused (here by the local server, which has no token endpoint: 404;
    Google's answers 400 invalid_grant); the storage endpoint is never reached."""
    base, _ = corpus
    client = gcs_server.client()
    client.bucket(gcs_bucket).blob("in/tracking.log-1.gz").upload_from_filename(str(sorted((base / "logs").rglob("*.gz"))[-1]))
    env = _env(gcs_server)
    source, target, existing = f"gs://{gcs_bucket}/in/*.gz", f"gs://{gcs_bucket}/out", f"gs://{gcs_bucket}/in"
    if case == "missing output bucket":
        target = existing = "gs://no-such-bucket-here/out"
    elif case == "missing input bucket":
        source = "gs://no-such-input-bucket/logs/*.gz"
    elif case == "refused credentials":
        env = _without_local_server(env, tmp_path)
        env["GOOGLE_APPLICATION_CREDENTIALS"] = str(_service_account_key(tmp_path, f"{gcs_server.endpoint_url}/token"))
    elif case == "missing credentials":
        env = _without_local_server(env, tmp_path)
    else:
        env["STORAGE_EMULATOR_HOST"] = "http://127.0.0.1:9"  # nothing listens on the discard port
    # explicit runner flags: the run does not list its inputs to pick a parallelism before its checks
    commands = [("run", "--input", source, "--output", target, "--direct_running_mode=in_memory")]
    if case != "missing input bucket":
        commands += [
            ("load", "--output", existing, "--warehouse", f"duckdb:///{tmp_path}/w.duckdb"),
            ("report", existing, "--html", str(tmp_path / "r.html")),
        ]
    for command in commands:
        result = run_cli(*command, env=env, check=False)
        assert result.returncode != 0, command
        assert result.stderr.strip().count("\n") == 0, result.stderr
        assert CASES[case] in result.stderr, (command[0], result.stderr)
        assert "gs://" in result.stderr  # names the URL
    assert _keys(client, gcs_bucket, "out/") == []  # nothing half-written
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "w.duckdb").exists()


def test_load_report_and_forget_work_on_a_gcs_output(gcs_server, gcs_bucket, corpus, tmp_path):
    import duckdb

    base, local_out = corpus
    client = gcs_server.client()
    _upload(client, gcs_bucket, base / "logs", "logs")
    out = f"gs://{gcs_bucket}/out"
    env = _env(gcs_server)
    run_cli("run", "--input", f"gs://{gcs_bucket}/logs/{GLOB}", "--output", out, env=env)
    db = tmp_path / "w.duckdb"
    loaded = run_cli("load", "--output", out, "--warehouse", f"duckdb:///{db}", env=env)
    assert "loaded" in loaded.stdout
    with duckdb.connect(str(db)) as con:
        count = con.execute("SELECT count(*) FROM research_events").fetchone()[0]
    assert count == sum(manifest(local_out)["rows_written"]["research"].values())
    page = run_cli("report", out, env=env).stdout.strip()  # default: OUT/report.html, in the bucket
    assert page == f"{out}/report.html"
    html = client.bucket(gcs_bucket).blob("out/report.html").download_as_bytes()
    assert len(html) > 10_000 and b"<html" in html
    assert "_lock.json" not in " ".join(_keys(client, gcs_bucket, "out/"))

    # trackpipe forget on the same gs:// output: one learner leaves the files and the warehouse
    research = pa.concat_tables(pq.read_table(p) for p in sorted((local_out / "warehouse" / "research").rglob("*.parquet")))
    name = next(u for u in research.column("username").to_pylist() if u)
    users = tmp_path / "retired.csv"
    users.write_text(f"username,user_id\n{name},\n")
    run_cli("forget", "--output", out, "--users", str(users), "--warehouse", f"duckdb:///{db}", env=env)
    got = tmp_path / "after-forget"
    _download(client, gcs_bucket, "out", got)
    left = pa.concat_tables(pq.read_table(p) for p in sorted((got / "warehouse" / "research").rglob("*.parquet")))
    assert name not in left.column("username").to_pylist()
    assert left.num_rows == research.num_rows - research.column("username").to_pylist().count(name)
    with duckdb.connect(str(db)) as con:
        assert con.execute("SELECT count(*) FROM research_events WHERE username = ?", [name]).fetchone()[0] == 0
    assert list((got / "_retirements").glob("*.json"))


def test_gcs_settings_travel_to_workers_inside_the_job(monkeypatch):
    """Workers of Flink or Dataflow do not get the launcher's environment: the settings the
    driver read ride in the pickled WorkDir and are installed by activate()."""
    from trackpipe.storage import gcs_settings
    from trackpipe.storage.workdir import WorkDir

    monkeypatch.setattr(gcs_settings, "_installed", None)  # nothing installed yet; restored after the test
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "127.0.0.1:4443")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "launcher-project")
    shipped = pickle.dumps(WorkDir("gs://b/out", "run-1"))
    monkeypatch.delenv("STORAGE_EMULATOR_HOST")
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT")
    assert gcs_settings.settings().endpoint is None  # a worker's own environment knows no server
    pickle.loads(shipped).activate()
    assert gcs_settings.settings() == gcs_settings.GcsSettings(endpoint="http://127.0.0.1:4443", project="launcher-project")
    assert gcs_settings.settings().anonymous
