"""One S3 configuration for pyarrow's S3FileSystem, boto3, smart_open and Beam's filesystem.

Settings come from Beam's own S3 options (`--s3_endpoint_url`, `--s3_access_key_id`,
`--s3_secret_access_key`, `--s3_session_token`, `--s3_region_name`, `--s3_verify`,
`--s3_disable_ssl`) first, then from the standard AWS variables (`AWS_ENDPOINT_URL` or
`AWS_ENDPOINT_URL_S3`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
`AWS_DEFAULT_REGION` or `AWS_REGION`), then from boto3's own chain (a profile, instance
credentials). Whatever comes from the environment is also added to the Beam flags, because
remote workers (Dataflow, Flink) receive pipeline options, not the launcher's environment.
Secrets are redacted wherever options are recorded (`redact`).

`--s3_verify` takes a CA bundle path; `--s3_verify=false` (no certificate check) is refused:
pyarrow's S3 client (the AWS C++ SDK) always verifies TLS, so use the server's CA bundle, or
`--s3_disable_ssl` for a plain-http endpoint such as a local test server.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from urllib.parse import urlparse

from trackpipe.errors import TrackpipeError

# Beam flag -> environment variables that can provide it, in order.
_FLAGS = {
    "s3_endpoint_url": ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
    "s3_access_key_id": ("AWS_ACCESS_KEY_ID",),
    "s3_secret_access_key": ("AWS_SECRET_ACCESS_KEY",),
    "s3_session_token": ("AWS_SESSION_TOKEN",),
    "s3_region_name": ("AWS_DEFAULT_REGION", "AWS_REGION"),
}
_SECRET_FLAGS = ("--s3_secret_access_key", "--s3_session_token")
ATTEMPTS = 3  # tries per request (boto3 and pyarrow alike), so an unreachable endpoint fails in seconds
READ_TIMEOUT = 15  # seconds without a byte before a try is given up (not a cap on a whole transfer)


@dataclass(frozen=True)
class S3Settings:
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    region_name: str | None = None
    verify: str | None = None
    disable_ssl: bool = False

    def client(self):
        """A boto3 S3 client (for batched deletes, the lock and smart_open)."""
        import boto3
        from botocore.config import Config as BotoConfig

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            aws_session_token=self.session_token,
            region_name=self.region_name,
            use_ssl=not self.disable_ssl,
            verify=self.ca_bundle(),
            config=BotoConfig(retries={"total_max_attempts": ATTEMPTS, "mode": "standard"}, connect_timeout=5, read_timeout=READ_TIMEOUT),
        )

    def filesystem(self):
        """A pyarrow S3FileSystem (reads, writes, listing, copies) with the same settings."""
        import pyarrow.fs as pafs

        kwargs: dict = {
            "region": self.region_name or "us-east-1",
            "connect_timeout": 5,
            "request_timeout": READ_TIMEOUT,
            "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=ATTEMPTS),
            "allow_delayed_open": True,  # a small object is one PutObject, not a 3-request multipart upload
            "tls_ca_file_path": self.ca_bundle(),
        }
        if self.access_key_id and self.secret_access_key:
            kwargs.update(access_key=self.access_key_id, secret_key=self.secret_access_key, session_token=self.session_token)
        if self.endpoint_url:
            parsed = urlparse(self.endpoint_url if "://" in self.endpoint_url else "https://" + self.endpoint_url)
            kwargs.update(endpoint_override=parsed.netloc + parsed.path.rstrip("/"), scheme=parsed.scheme)
        if self.disable_ssl:
            kwargs["scheme"] = "http"
        return pafs.S3FileSystem(**kwargs)

    def ca_bundle(self) -> str | None:
        """The CA bundle of --s3_verify, None for the system's. Raises for --s3_verify=false."""
        value = (self.verify or "").strip()
        if value.lower() in ("false", "0", "no", "off"):
            raise TrackpipeError(
                "--s3_verify=false is not supported (the S3 client always checks certificates): give the server's "
                "CA bundle with --s3_verify=/path/to/ca.pem, or --s3_disable_ssl for a plain-http endpoint"
            )
        return None if value.lower() in ("", "true", "1", "yes", "on") else value


_current = S3Settings()


def _parse_flags(beam_flags: list[str]) -> dict:
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for name in (*_FLAGS, "s3_verify"):
        parser.add_argument(f"--{name}")
    parser.add_argument("--s3_disable_ssl", action="store_true", default=False)
    known, _ = parser.parse_known_args(beam_flags)
    return vars(known)


def configure_s3(beam_flags: list[str]) -> list[str]:
    """Resolve the S3 settings for this process; return the Beam flags completed from the
    environment."""
    global _current
    given = _parse_flags(beam_flags)
    added = []
    values = {}
    for flag, variables in _FLAGS.items():
        value = given.get(flag)
        if value is None:
            value = next((os.environ[v] for v in variables if os.environ.get(v)), None)
            if value is not None:
                added.append(f"--{flag}={value}")
        values[flag] = value
    _current = S3Settings(
        endpoint_url=values["s3_endpoint_url"],
        access_key_id=values["s3_access_key_id"],
        secret_access_key=values["s3_secret_access_key"],
        session_token=values["s3_session_token"],
        region_name=values["s3_region_name"],
        verify=given.get("s3_verify"),
        disable_ssl=bool(given.get("s3_disable_ssl")),
    )
    _current.ca_bundle()  # an unsupported --s3_verify fails here, before anything runs
    return list(beam_flags) + added


def add_arguments(parser) -> None:
    """Beam's S3 options, for commands that are not pipelines (`load`, `report`)."""
    group = parser.add_argument_group("S3 (default: the AWS_* variables or a profile)")
    group.add_argument("--s3_endpoint_url", metavar="URL", help="S3 endpoint, e.g. http://127.0.0.1:8333 for SeaweedFS or MinIO")
    group.add_argument("--s3_access_key_id", metavar="KEY")
    group.add_argument("--s3_secret_access_key", metavar="SECRET")
    group.add_argument("--s3_session_token", metavar="TOKEN")
    group.add_argument("--s3_region_name", metavar="REGION")
    group.add_argument("--s3_verify", metavar="CA_BUNDLE", help="a CA bundle path for the endpoint's certificate (false is not supported)")
    group.add_argument("--s3_disable_ssl", action="store_true", default=False)


def configure_from_args(args) -> None:
    """configure_s3 from the options added by add_arguments."""
    flags = [f"--{name}={value}" for name in (*_FLAGS, "s3_verify") if (value := getattr(args, name, None))]
    if getattr(args, "s3_disable_ssl", False):
        flags.append("--s3_disable_ssl")
    configure_s3(flags)


def smart_open_params() -> dict:
    """`transport_params` for `smart_open.open("s3://...")` with the same settings, e.g.
    `smart_open.open(url, "rb", transport_params=smart_open_params())`."""
    return {"client": settings().client()}


def settings() -> S3Settings:
    return _current


def install(value: S3Settings) -> None:
    """Use these settings in this process (a worker receiving the driver's)."""
    global _current
    _current = value


_URL_PASSWORD = re.compile(r"([a-z][a-z0-9+.-]*://[^:/@\s]*):[^@/\s]*@", re.IGNORECASE)


def redact(flags: list[str]) -> list[str]:
    """Command-line words with secret values replaced, for manifests, locks and logs: the values
    of the S3 secret flags, and the password of any URL (`postgresql://user:***@host/db`)."""
    flags = [_URL_PASSWORD.sub(r"\1:***@", flag) for flag in flags]
    out, hide_next = [], False
    for flag in flags:
        if hide_next:
            out.append("***")
            hide_next = False
            continue
        name, eq, _value = flag.partition("=")
        if name in _SECRET_FLAGS:
            if eq:
                out.append(f"{name}=***")
            else:
                out.append(name)
                hide_next = True
        else:
            out.append(flag)
    return out


def bucket_and_key(url: str) -> tuple[str, str]:
    parsed = urlparse(url)
    return parsed.netloc, parsed.path.lstrip("/")
