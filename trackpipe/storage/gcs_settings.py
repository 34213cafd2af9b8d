"""One Cloud Storage configuration for pyarrow's GcsFileSystem and google-cloud-storage.

Settings come from the standard Google variables, as every Google client library reads them:
- `STORAGE_EMULATOR_HOST` (e.g. `http://127.0.0.1:4443`): a local GCS API server, spoken to
  anonymously (as google-cloud-storage does; credentials variables are then ignored). pyarrow
  does not read this variable itself (its C++ client reads `CLOUD_STORAGE_EMULATOR_ENDPOINT`),
  so it is turned into its endpoint_override here.
- `GOOGLE_APPLICATION_CREDENTIALS`: a service-account key (or any credentials file gcloud
  writes); without it, Application Default Credentials: gcloud's
  `application-default login`, or the metadata server on Dataflow and GCE workers.
- `GOOGLE_CLOUD_PROJECT` (or `GCLOUD_PROJECT`): only needed to create buckets; object I/O
  does not use it.
Beam has no option for these (its `--project` names the Dataflow project), so `trackpipe run`,
`load` and `report` all read the variables. Remote workers (Flink, Dataflow) do not share the
launcher's environment: the driver's settings travel inside the job (`WorkDir.activate`
installs them), like the S3 settings do.

Retries are bounded (`RETRY_SECONDS` per call): google-cloud-storage retries for 120 s by
default and pyarrow's client for 15 minutes, which turned an unreachable endpoint into a
17-minute hang.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from urllib.parse import urlparse

RETRY_SECONDS = 10  # total time one call may spend retrying transient errors
TIMEOUT = (5, 60)  # google-cloud-storage: seconds to connect, seconds without an answer
CHECK_TIMEOUT = (5, 15)  # the bucket check before a run: a server that never answers fails fast
SCOPES = ("https://www.googleapis.com/auth/devstorage.read_write",)
DEFAULT_ENDPOINT = "https://storage.googleapis.com"


@dataclass(frozen=True)
class GcsSettings:
    endpoint: str | None = None  # an emulator's URL; None: storage.googleapis.com
    credentials_file: str | None = None  # None: Application Default Credentials
    project: str | None = None

    @classmethod
    def from_environment(cls) -> GcsSettings:
        host = os.environ.get("STORAGE_EMULATOR_HOST") or None
        if host and "://" not in host:
            host = "http://" + host  # the libraries accept both forms
        return cls(
            endpoint=host.rstrip("/") if host else None,
            credentials_file=os.environ.get("GOOGLE_APPLICATION_CREDENTIALS") or None,
            project=os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCLOUD_PROJECT") or None,
        )

    @property
    def anonymous(self) -> bool:
        """An emulator is spoken to without credentials, as Google's libraries do."""
        return bool(self.endpoint)

    @property
    def endpoint_or_default(self) -> str:
        return self.endpoint or DEFAULT_ENDPOINT

    def credentials(self):
        """google-auth credentials: the key file, or Application Default Credentials. Raises
        google.auth's DefaultCredentialsError when there are none."""
        import google.auth

        if self.credentials_file and os.path.exists(self.credentials_file):
            credentials, _project = google.auth.load_credentials_from_file(self.credentials_file, scopes=SCOPES)
        else:  # on a worker without the launcher's key file: the worker's own identity
            credentials, _project = google.auth.default(scopes=SCOPES)
        return credentials

    def client(self):
        """A google-cloud-storage client (for the lock, copies, deletes and the bucket check)."""
        from google.api_core.client_options import ClientOptions
        from google.cloud import storage as gcs

        options = ClientOptions(api_endpoint=self.endpoint) if self.endpoint else None
        if self.anonymous:
            from google.auth.credentials import AnonymousCredentials

            credentials = AnonymousCredentials()
        else:
            credentials = self.credentials()
        return gcs.Client(project=self.project, credentials=credentials, client_options=options)

    def filesystem(self):
        """A pyarrow GcsFileSystem (reads, writes, listing). Credentials other than anonymous
        are google-cloud-cpp's own Application Default Credentials, which it reads from the
        environment only (see install). They are looked up with google-auth first, so that
        having none fails at once with google-auth's message, not after pyarrow's retries."""
        import pyarrow.fs as pafs

        if not self.anonymous:
            self.credentials()

        kwargs: dict = {"retry_time_limit": _dt.timedelta(seconds=RETRY_SECONDS), "project_id": self.project, "anonymous": self.anonymous}
        if self.endpoint:
            parsed = urlparse(self.endpoint)
            kwargs.update(endpoint_override=parsed.netloc, scheme=parsed.scheme or "http")
        return pafs.GcsFileSystem(**kwargs)


def retry():
    """google-cloud-storage's own retry policy (transient errors, backoff), bounded to
    RETRY_SECONDS instead of 120 s. Pass it to every call."""
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY.with_timeout(RETRY_SECONDS)


_installed: GcsSettings | None = None


def settings() -> GcsSettings:
    """The settings of this process: installed by the driver's job on a worker, else the
    environment's."""
    return _installed or GcsSettings.from_environment()


def install(value: GcsSettings) -> None:
    """Use these settings in this process (a worker receiving the driver's). google-cloud-cpp,
    under pyarrow, finds a key file only through GOOGLE_APPLICATION_CREDENTIALS, so when the
    driver's key file exists here too and this process has none, the variable points at it."""
    global _installed
    _installed = value
    path = value.credentials_file
    if path and os.path.exists(path) and not os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"):
        os.environ["GOOGLE_APPLICATION_CREDENTIALS"] = path


def add_arguments(parser) -> None:
    """What configures gs:// for commands that are not pipelines (`load`, `report`): the
    Google variables, as for `trackpipe run`."""
    parser.add_argument_group(
        "GCS",
        "gs:// URLs use the standard Google variables: STORAGE_EMULATOR_HOST for a local GCS server\n"
        "(e.g. http://127.0.0.1:4443), GOOGLE_APPLICATION_CREDENTIALS or `gcloud auth application-default login`\n"
        "for credentials (the metadata server on Google Cloud), GOOGLE_CLOUD_PROJECT.",
    )
