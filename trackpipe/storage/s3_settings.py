"""One S3 configuration for Beam's filesystem, boto3 and smart_open.

Settings come from Beam's own S3 options (`--s3_endpoint_url`, `--s3_access_key_id`,
`--s3_secret_access_key`, `--s3_session_token`, `--s3_region_name`, `--s3_verify`,
`--s3_disable_ssl`) first, then from the standard AWS variables (`AWS_ENDPOINT_URL` or
`AWS_ENDPOINT_URL_S3`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
`AWS_DEFAULT_REGION` or `AWS_REGION`), then from boto3's own chain (a profile, instance
credentials). Whatever comes from the environment is also added to the Beam flags, because
remote workers (Dataflow, Flink) receive pipeline options, not the launcher's environment.
Secrets are redacted wherever options are recorded (`redact`).
"""

from __future__ import annotations

import argparse
import os
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
        """A boto3 S3 client with exactly the settings Beam's filesystem uses."""
        import boto3
        from botocore.config import Config as BotoConfig

        verify = self.verify
        if verify is not None and verify.lower() in ("false", "0", "no"):
            verify = False
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            aws_session_token=self.session_token,
            region_name=self.region_name,
            use_ssl=not self.disable_ssl,
            verify=verify,
            config=BotoConfig(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60),
        )


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
    return list(beam_flags) + added


def add_arguments(parser) -> None:
    """Beam's S3 options, for commands that are not pipelines (`load`, `report`)."""
    group = parser.add_argument_group("S3 (default: the AWS_* variables or a profile)")
    group.add_argument("--s3_endpoint_url", metavar="URL", help="S3 endpoint, e.g. http://127.0.0.1:8333 for SeaweedFS or MinIO")
    group.add_argument("--s3_access_key_id", metavar="KEY")
    group.add_argument("--s3_secret_access_key", metavar="SECRET")
    group.add_argument("--s3_session_token", metavar="TOKEN")
    group.add_argument("--s3_region_name", metavar="REGION")
    group.add_argument("--s3_verify", metavar="BOOL_OR_CA_BUNDLE", help="false, or a CA bundle path")
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


def redact(flags: list[str]) -> list[str]:
    """Beam flags with secret values replaced, for manifests and logs."""
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


def explain(exc: BaseException, url: str) -> str:
    """A one-line reason for an S3 failure (unreachable endpoint, missing bucket, refused
    credentials), naming the URL."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    bucket, _ = bucket_and_key(url)
    text = str(exc)
    if isinstance(exc, NoCredentialsError) or "Unable to locate credentials" in text:
        return f"no AWS credentials for {url}: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, or --s3_access_key_id/--s3_secret_access_key"
    if isinstance(exc, EndpointConnectionError) or "Could not connect to the endpoint" in text or "Connect timeout" in text:
        endpoint = _current.endpoint_url or "the AWS S3 endpoint"
        return f"cannot reach {endpoint} for {url}: is the endpoint right (AWS_ENDPOINT_URL / --s3_endpoint_url) and the server up?"
    code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
    for marker in ("NoSuchBucket", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "404", "403"):
        if not code and marker in text:
            code = marker
    if code in ("NoSuchBucket", "404"):
        return f"the bucket '{bucket}' does not exist ({url})"
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return f"S3 refused the credentials for {url} ({code}): check the access key and secret"
    if code in ("AccessDenied", "403", "Forbidden"):
        return f"S3 refused access to {url} (AccessDenied): check the access key, the secret and their permissions on bucket '{bucket}'"
    return f"S3 error for {url}: {text.splitlines()[0][:300] if text else exc.__class__.__name__}"


def check_bucket(url: str) -> None:
    """Fail with one clear line unless the bucket of `url` exists and the credentials work."""
    bucket, _ = bucket_and_key(url)
    try:
        settings().client().head_bucket(Bucket=bucket)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line
        raise TrackpipeError(explain(exc, url)) from None


def put_if_absent(url: str, data: bytes) -> bool:
    """Create an object only if it does not exist (conditional PUT, If-None-Match: *).
    Returns False when it exists."""
    from botocore.exceptions import ClientError

    bucket, key = bucket_and_key(url)
    try:
        settings().client().put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
            return False
        raise TrackpipeError(explain(exc, url)) from None
    except Exception as exc:  # noqa: BLE001
        raise TrackpipeError(explain(exc, url)) from None
    return True
