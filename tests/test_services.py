"""Prove the service fixtures in tests/services.py work against the real servers.

These are the contracts later tests rely on: signed S3 access and rejection of bad
credentials, the three S3 clients the pipeline uses (boto3, smart_open, Beam), conditional
PUT for locking, PostgreSQL COPY, and multi-recipient GnuPG encryption.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.services import S3Server


def _error_code(exc: ClientError) -> tuple[str, int]:
    """(S3 error code, HTTP status) of a botocore ClientError."""
    return exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]


def _put_tree(client, bucket: str, keys: list[str]) -> None:
    """Upload one small object per key, whose body is the key itself."""
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=key.encode())


# ----------------------------------------------------------------------------- S3 / boto3


@pytest.mark.s3
def test_put_and_get_object(s3_server: S3Server, s3_bucket: str):
    client = s3_server.client()
    client.put_object(Bucket=s3_bucket, Key="dir/hello.txt", Body=b"hello seaweed")

    body = client.get_object(Bucket=s3_bucket, Key="dir/hello.txt")["Body"].read()

    assert body == b"hello seaweed"
    listed = client.list_objects_v2(Bucket=s3_bucket)["Contents"]
    assert [o["Key"] for o in listed] == ["dir/hello.txt"]


@pytest.mark.s3
def test_wrong_secret_key_is_rejected(s3_server: S3Server, s3_bucket: str):
    import boto3

    s3_server.client().put_object(Bucket=s3_bucket, Key="secret.txt", Body=b"x")
    wrong = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key + "-wrong",
        region_name=s3_server.region,
    )

    with pytest.raises(ClientError) as read_error:
        wrong.get_object(Bucket=s3_bucket, Key="secret.txt")
    with pytest.raises(ClientError) as write_error:
        wrong.put_object(Bucket=s3_bucket, Key="intruder.txt", Body=b"x")

    assert _error_code(read_error.value) == ("SignatureDoesNotMatch", 403)
    assert _error_code(write_error.value) == ("SignatureDoesNotMatch", 403)


@pytest.mark.s3
def test_unsigned_requests_are_rejected(s3_server: S3Server, s3_bucket: str):
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    anonymous = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        region_name=s3_server.region,
        config=Config(signature_version=UNSIGNED),
    )

    with pytest.raises(ClientError) as error:
        anonymous.list_objects_v2(Bucket=s3_bucket)

    assert _error_code(error.value) == ("AccessDenied", 403)


@pytest.mark.s3
def test_conditional_put_if_none_match_refuses_to_overwrite(s3_server: S3Server, s3_bucket: str):
    """The lock used later relies on create-only PUTs: the second one must get 412."""
    client = s3_server.client()
    client.put_object(Bucket=s3_bucket, Key="lock", Body=b"first", IfNoneMatch="*")

    with pytest.raises(ClientError) as error:
        client.put_object(Bucket=s3_bucket, Key="lock", Body=b"second", IfNoneMatch="*")

    assert _error_code(error.value) == ("PreconditionFailed", 412)
    assert client.get_object(Bucket=s3_bucket, Key="lock")["Body"].read() == b"first"


@pytest.mark.s3
def test_env_points_subprocess_sdk_at_server(s3_server: S3Server, s3_bucket: str):
    """A child process configured only by env() reaches the server (AWS_ENDPOINT_URL)."""
    import os
    import subprocess
    import sys

    s3_server.client().put_object(Bucket=s3_bucket, Key="from-parent", Body=b"hi")
    script = f"import boto3, sys;print(boto3.client('s3').get_object(Bucket='{s3_bucket}', Key='from-parent')['Body'].read().decode())"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(s3_server.env())

    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hi"


# ------------------------------------------------------------------------- S3 / smart_open


@pytest.mark.s3
def test_smart_open_reads_and_writes_s3_uri(s3_server: S3Server, s3_bucket: str):
    import smart_open

    params = {"client": s3_server.client()}
    uri = f"s3://{s3_bucket}/logs/2024/tracking.log"
    with smart_open.open(uri, "w", transport_params=params) as out:
        out.write('{"event_type": "play_video"}\n')

    with smart_open.open(uri, "r", transport_params=params) as src:
        assert src.read() == '{"event_type": "play_video"}\n'


# ------------------------------------------------------------------------------- S3 / Beam


@pytest.fixture
def beam_s3(s3_server: S3Server):
    """Point Beam's global FileSystems at the server; restore the previous options after."""
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    previous = FileSystems._pipeline_options
    FileSystems.set_options(
        PipelineOptions(
            s3_endpoint_url=s3_server.endpoint_url,
            s3_access_key_id=s3_server.access_key,
            s3_secret_access_key=s3_server.secret_key,
            s3_region_name=s3_server.region,
        )
    )
    try:
        yield FileSystems
    finally:
        FileSystems.set_options(previous)


def _matched_paths(filesystems, pattern: str) -> list[str]:
    [result] = filesystems.match([pattern])
    return sorted(m.path for m in result.metadata_list)


@pytest.mark.s3
def test_beam_s3_double_star_matches_across_folders(beam_s3, s3_server, s3_bucket):
    keys = [
        "logs/top.log",
        "logs/2024/01/a.log",
        "logs/2024/02/b.log.gz",
        "other/c.log",
    ]
    _put_tree(s3_server.client(), s3_bucket, keys)
    base = f"s3://{s3_bucket}"

    everything = _matched_paths(beam_s3, f"{base}/logs/**")
    one_level = _matched_paths(beam_s3, f"{base}/logs/*")
    deep_suffix = _matched_paths(beam_s3, f"{base}/logs/**.log")

    assert everything == [f"{base}/{k}" for k in sorted(keys[:3])]
    assert one_level == [f"{base}/logs/top.log"]  # '*' stops at '/'
    assert deep_suffix == [f"{base}/logs/2024/01/a.log", f"{base}/logs/top.log"]


@pytest.mark.s3
def test_beam_s3_reads_object(beam_s3, s3_server, s3_bucket):
    s3_server.client().put_object(Bucket=s3_bucket, Key="in/events.log", Body=b"line1\nline2\n")

    [result] = beam_s3.match([f"s3://{s3_bucket}/in/**"])
    [metadata] = result.metadata_list
    with beam_s3.open(metadata.path) as src:
        data = src.read()

    assert metadata.size_in_bytes == 12
    assert data == b"line1\nline2\n"


# ------------------------------------------------------------------------------ PostgreSQL


@pytest.mark.postgres
def test_copy_rows_into_table(pg_url: str):
    import psycopg

    rows = [(1, "play_video", "course-v1:X+Y+Z"), (2, "pause_video", None)]
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE events (id int PRIMARY KEY, event_type text, course text)")
        with conn.cursor() as cur:
            with cur.copy("COPY events (id, event_type, course) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        conn.commit()

        stored = conn.execute("SELECT id, event_type, course FROM events ORDER BY id").fetchall()

    assert stored == rows


@pytest.mark.postgres
def test_each_test_gets_a_fresh_database(pg_url: str, postgres_server):
    import psycopg

    with psycopg.connect(pg_url) as conn:
        tables = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'").fetchone()[0]
        dbname = conn.info.dbname

    assert tables == 0
    assert dbname != postgres_server.dbname
    assert pg_url.startswith(f"postgresql://{postgres_server.user}:")


@pytest.mark.postgres
def test_wrong_password_is_rejected(postgres_server):
    import psycopg

    bad_url = postgres_server.url.replace(postgres_server.password, "not-the-password")

    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(bad_url, connect_timeout=5).close()


# ---------------------------------------------------------------------------------- GnuPG


def test_encrypt_to_two_recipients_and_decrypt(gpg_keys, tmp_path):
    alice_fpr, alice_pub = gpg_keys.generate("Alice Analyst", "alice@example.org")
    bob_fpr, bob_pub = gpg_keys.generate("Bob Backup", "bob@example.org")
    plain = tmp_path / "report.csv"
    plain.write_text("user_id,events\n1,42\n")
    encrypted = tmp_path / "report.csv.gpg"

    gpg_keys.gpg(
        "--trust-model",
        "always",
        "--encrypt",
        "-r",
        alice_fpr,
        "-r",
        bob_fpr,
        "--output",
        str(encrypted),
        str(plain),
    )
    decrypted = gpg_keys.gpg("--status-fd", "2", "--decrypt", str(encrypted))

    assert decrypted.stdout == plain.read_bytes()
    enc_to = [ln for ln in decrypted.stderr.decode().splitlines() if " ENC_TO " in ln]
    assert len(enc_to) == 2  # one session-key packet per recipient
    for pub in (alice_pub, bob_pub):
        assert open(pub).read().startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")


def test_generated_key_has_encryption_subkey(gpg_keys):
    fingerprint, _ = gpg_keys.generate("Carol", "carol@example.org")

    listing = gpg_keys.gpg("--with-colons", "--list-keys", fingerprint).stdout.decode()

    capabilities = [ln.split(":")[11] for ln in listing.splitlines() if ln.startswith("sub:")]
    assert any("e" in caps for caps in capabilities), listing
