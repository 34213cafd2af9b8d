"""S3 end to end on a real S3 server (SeaweedFS on 127.0.0.1): input and output in a bucket."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers import files_under, manifest, read_rows, run_cli
from trackpipe.generator.generate import generate

pytestmark = [pytest.mark.s3, pytest.mark.slow]

COUNTS = ("lines_read", "blank_lines", "rejected", "duplicates_removed", "rows_written", "reconciliation", "dates")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    base = tmp_path_factory.mktemp("s3corpus")
    generate(str(base), 20_000, seed=21, days=2, files=3)
    out = base / "local-out"
    run_cli("run", "--input", str(base / "logs" / "**" / "tracking.log-*.gz"), "--output", str(out))
    return base, out


def _upload(client, bucket: str, folder: Path, prefix: str) -> int:
    count = 0
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder)}")
            count += 1
    return count


def _download(client, bucket: str, prefix: str, dest: Path) -> list[str]:
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(prefix) + 1 :]
            keys.append(rel)
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, obj["Key"], str(target))
    return sorted(keys)


def _env(s3_server) -> dict:
    return {**os.environ, **s3_server.env()}


def _strip_paths(table):
    return table.drop_columns(["source_file"])


def test_input_and_output_on_s3_match_the_local_run(s3_server, s3_bucket, corpus, tmp_path):
    base, local_out = corpus
    client = s3_server.client()
    _upload(client, s3_bucket, base / "logs", "logs")
    result = run_cli(
        "run",
        "--input",
        f"s3://{s3_bucket}/logs/tracking/**/tracking.log-*.gz",
        "--output",
        f"s3://{s3_bucket}/out/",
        env=_env(s3_server),
    )
    assert f"s3://{s3_bucket}/out/_manifest.json" in result.stdout
    got = tmp_path / "got"
    keys = _download(client, s3_bucket, "out", got)
    assert not [k for k in keys if k.startswith("_tmp/") or k == "_lock.json"]  # nothing temporary left
    assert _strip_paths(read_rows(got)).equals(_strip_paths(read_rows(local_out)))
    for rel in files_under(local_out / "research_package"):
        assert (got / "research_package" / rel).read_bytes() == (local_out / "research_package" / rel).read_bytes(), rel
    s3_manifest, local_manifest = manifest(got), manifest(local_out)
    for key in COUNTS:
        assert s3_manifest[key] == local_manifest[key], key
    assert all(i["path"].startswith(f"s3://{s3_bucket}/logs/tracking/") for i in s3_manifest["inputs"])
    assert len(s3_manifest["inputs"]) == len(local_manifest["inputs"])


def test_rerun_replaces_partitions_without_stale_objects(s3_server, s3_bucket, corpus, tmp_path):
    base, _ = corpus
    client = s3_server.client()
    _upload(client, s3_bucket, base / "logs", "logs")
    args = ("run", "--input", f"s3://{s3_bucket}/logs/**/*.gz", "--output", f"s3://{s3_bucket}/out", "--no-package")
    run_cli(*args, env=_env(s3_server))
    first = _download(client, s3_bucket, "out/warehouse", tmp_path / "first")
    day = sorted(k for k in first if k.startswith("research/"))[0].split("/")[1]
    stale = f"out/warehouse/research/{day}/part-left-by-an-old-run.parquet"
    client.put_object(Bucket=s3_bucket, Key=stale, Body=b"stale")
    run_cli(*args, env=_env(s3_server))
    second = _download(client, s3_bucket, "out/warehouse", tmp_path / "second")
    assert second == first
    for rel in first:
        assert (tmp_path / "first" / rel).read_bytes() == (tmp_path / "second" / rel).read_bytes()


def test_beam_s3_flags_work_without_environment_and_secrets_are_redacted(s3_server, s3_bucket, corpus, tmp_path):
    base, _ = corpus
    client = s3_server.client()
    one = sorted((base / "logs").rglob("*.gz"), key=lambda p: p.stat().st_size)[-1]
    client.upload_file(str(one), s3_bucket, "in/tracking.log-1.gz")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    run_cli(
        "run",
        "--input",
        f"s3://{s3_bucket}/in/*.gz",
        "--output",
        f"s3://{s3_bucket}/out",
        "--s3_endpoint_url",
        s3_server.endpoint_url,
        "--s3_access_key_id",
        s3_server.access_key,
        "--s3_secret_access_key",
        s3_server.secret_key,
        "--s3_region_name",
        s3_server.region,
        env=env,
    )
    body = client.get_object(Bucket=s3_bucket, Key="out/_manifest.json")["Body"].read().decode()
    assert s3_server.secret_key not in body
    assert "--s3_secret_access_key" in json.loads(body)["options"]["beam"]


@pytest.mark.parametrize("case", ["missing output bucket", "missing input bucket", "wrong secret", "unreachable endpoint"])
def test_s3_errors_are_one_clear_line_and_write_nothing(s3_server, s3_bucket, corpus, case):
    base, _ = corpus
    client = s3_server.client()
    client.upload_file(str(sorted((base / "logs").rglob("*.gz"))[-1]), s3_bucket, "in/tracking.log-1.gz")
    env = _env(s3_server)
    source, target = f"s3://{s3_bucket}/in/*.gz", f"s3://{s3_bucket}/out"
    if case == "missing output bucket":
        target = "s3://no-such-bucket-here/out"
        expect = "bucket 'no-such-bucket-here' does not exist"
    elif case == "missing input bucket":
        source = "s3://no-such-input-bucket/logs/*.gz"
        expect = "bucket 'no-such-input-bucket' does not exist"
    elif case == "wrong secret":
        env["AWS_SECRET_ACCESS_KEY"] = "not-the-secret"
        expect = "S3 refused"
    else:
        env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"  # nothing listens on the discard port
        expect = "cannot reach http://127.0.0.1:9"
    result = run_cli("run", "--input", source, "--output", target, env=env, check=False)
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert expect in result.stderr
    listed = client.list_objects_v2(Bucket=s3_bucket, Prefix="out/")
    assert listed.get("KeyCount", 0) == 0  # nothing half-written


def test_load_and_report_read_an_s3_output(s3_server, s3_bucket, corpus, tmp_path):
    import duckdb

    base, local_out = corpus
    client = s3_server.client()
    _upload(client, s3_bucket, base / "logs", "logs")
    out = f"s3://{s3_bucket}/out"
    env = _env(s3_server)
    run_cli("run", "--input", f"s3://{s3_bucket}/logs/**/*.gz", "--output", out, env=env)
    db = tmp_path / "w.duckdb"
    loaded = run_cli("load", "--output", out, "--warehouse", f"duckdb:///{db}", env=env)
    assert "loaded" in loaded.stdout
    with duckdb.connect(str(db)) as con:
        count = con.execute("SELECT count(*) FROM research_events").fetchone()[0]
    assert count == sum(manifest(local_out)["rows_written"]["research"].values())
    page = tmp_path / "report.html"
    run_cli("report", out, "--html", str(page), env=env)
    assert manifest(local_out)["rows_written_total"] > 0 and page.stat().st_size > 10_000


def test_the_lock_on_s3_refuses_a_second_run(s3_server, s3_bucket, corpus):
    import socket

    base, _ = corpus
    client = s3_server.client()
    client.upload_file(str(sorted((base / "logs").rglob("*.gz"))[-1]), s3_bucket, "in/tracking.log-1.gz")
    owner = {"run_id": "other-run", "host": socket.gethostname(), "pid": os.getpid(), "started_at": "2026-11-25T10:00:00+00:00"}
    client.put_object(Bucket=s3_bucket, Key="out/_lock.json", Body=json.dumps(owner).encode())
    result = run_cli("run", "--input", f"s3://{s3_bucket}/in/*.gz", "--output", f"s3://{s3_bucket}/out", env=_env(s3_server), check=False)
    assert result.returncode != 0 and "in use by run other-run" in result.stderr
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket, Prefix="out/").get("Contents", [])]
    assert keys == ["out/_lock.json"]


def test_one_configuration_serves_boto3_and_smart_open(s3_server, s3_bucket, monkeypatch):
    import smart_open

    from trackpipe.storage import s3_settings

    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    flags = s3_settings.configure_s3([])
    assert f"--s3_endpoint_url={s3_server.endpoint_url}" in flags  # remote workers get it as a Beam option
    s3_settings.settings().client().put_object(Bucket=s3_bucket, Key="a/b.txt", Body=b"hello")
    url = f"s3://{s3_bucket}/a/b.txt"
    with smart_open.open(url, "rb", transport_params=s3_settings.smart_open_params()) as handle:
        assert handle.read() == b"hello"
    s3_settings.install(s3_settings.S3Settings())
