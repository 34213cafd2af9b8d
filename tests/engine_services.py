"""Real engines for the tests: a standalone Apache Flink cluster and Beam's Prism runner, both
from the cache `scripts/engines.sh fetch` fills (`make test` runs it first).

**A private network namespace.** Several Beam pieces bind every interface, with no option to
change it: the Flink job server's artifact and expansion ports, the LOOPBACK SDK worker pool
(`[::]`), Prism's job port, the TaskManager's servers for SDK workers. The project's rule is that
tests bind to 127.0.0.1 only, so the cluster, the job servers, Prism and every trackpipe run of
these tests live in a network namespace whose only interface is loopback: there "every
interface" is 127.0.0.1. It also keeps the cluster's fixed ports (REST 8081, RPC 6123/6124, data
6125, blob 6130) from colliding with a developer's `make flink-up` cluster or another checkout's
tests. A `sleep` started by `unshare --net` holds the namespace; commands enter it with
`nsenter --net`. That needs root (CI runs as root) or, otherwise, unprivileged user namespaces.

**One cluster per pytest run.** pytest-xdist workers each have their own session, but two
Flink clusters at once (a 1.6 GB JobManager and a 4 GB TaskManager each) is too much for a
2-core machine, and a TaskManager-kill test must not take down another test's job. So the
namespace and the cluster are shared by the run's workers: state lives in
`<engines cache>/test-runs/<test run id>/`, each worker registers its pid there, the last one
out stops everything, and a Flink job runs only while its test holds `FlinkCluster.exclusive()`.
A run killed without teardown is cleaned up by the next one (`_reap_abandoned`).

Nothing is left behind: cluster processes are stopped by their pid files and process groups,
each trackpipe run is started in a process group of its own that is killed when it ends (the
Flink job server Beam starts is in it), and the state folder (cluster config, logs, Flink's
temporary files) is removed; trackpipe runs use a temporary folder as working directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import ROOT
from tests.services import MissingSystemDependency, ServiceStartError, _die_with_parent, _log_tail
from trackpipe.runtime.engines import cached_engines, engines_dir
from trackpipe.storage.lock import pid_alive

__all__ = ["engines", "engine_run_state", "engine_netns", "flink_cluster", "prism_binary"]

ENGINES_SCRIPT = ROOT / "scripts" / "engines.sh"
FLINK_MASTER = "127.0.0.1:8081"
FETCH_TIMEOUT_S = 1800  # a first fetch builds Prism: minutes on 2 cores
FLINK_UP_TIMEOUT_S = 240


def fetch_engines() -> dict[str, str]:
    """Fetch (once; quick when cached) and return what engines.json records."""
    result = subprocess.run(["bash", str(ENGINES_SCRIPT), "fetch"], capture_output=True, text=True, timeout=FETCH_TIMEOUT_S)
    if result.returncode != 0:
        raise ServiceStartError(f"scripts/engines.sh fetch failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    found = cached_engines()
    missing = {"flink_home", "flink_job_server_jar", "prism"} - set(found)
    if missing:
        raise ServiceStartError(f"scripts/engines.sh fetch ran but {sorted(missing)} are missing from {engines_dir()}")
    return found


def run_env(folder: Path, **extra: str) -> dict[str, str]:
    """Environment for a trackpipe run of these tests: no AWS variables (they would become
    --s3_* flags in Flink's job config), no fault pauses unless given, the repo importable, and
    temporary files under `folder` (Beam's portable runners leave a temporary folder per run in
    TMPDIR: apache_beam/transforms/environments.py `python_sdk_dependencies`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k not in ("TRACKPIPE_TEST_PAUSE", "TRACKPIPE_DEBUG")}
    (folder / "tmp").mkdir(exist_ok=True)
    env["TMPDIR"] = str(folder / "tmp")
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


# --------------------------------------------------------------------------------------
# The network namespace
# --------------------------------------------------------------------------------------


def _require(tool: str, package: str) -> str:
    found = shutil.which(tool)
    if not found:
        raise MissingSystemDependency(f"'{tool}' not found; install {package} (make test runs scripts/engines.sh netns-tools)")
    return found


@dataclass(frozen=True)
class EngineNetns:
    """A network namespace with only loopback, held by the process `pid`."""

    pid: int

    def command(self, args: list[str]) -> list[str]:
        enter = [_require("nsenter", "util-linux"), "--target", str(self.pid), "--net"]
        if os.geteuid() != 0:
            enter[3:3] = ["--user", "--preserve-credentials"]
        return [*enter, "--", *map(str, args)]

    def popen(self, args: list[str], *, cwd: Path, env: dict[str, str] | None = None, log: Path) -> subprocess.Popen:
        """Start `args` inside the namespace in a process group of its own, output to `log`."""
        with open(log, "ab") as sink:
            return subprocess.Popen(
                self.command(args),
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def run(self, args: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
        """Run `args` inside the namespace; whatever it started is killed when it ends."""
        out, err = cwd / f".run-{time.monotonic_ns()}.out", cwd / f".run-{time.monotonic_ns()}.err"
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            proc = subprocess.Popen(
                self.command(args),
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        try:
            code = finish(proc, timeout)
        finally:
            texts = out.read_text(errors="replace"), err.read_text(errors="replace")
            out.unlink()
            err.unlink()
        return subprocess.CompletedProcess(proc.args, code, *texts)

    def http_json(self, url: str) -> dict | list | None:
        """GET `url` from inside the namespace; None when nothing answers."""
        code = "import json,sys,urllib.request as u; print(json.dumps(json.load(u.build_opener(u.ProxyHandler({})).open(sys.argv[1], timeout=5))))"
        result = subprocess.run(self.command([sys.executable, "-c", code, url]), capture_output=True, text=True, timeout=30)
        return json.loads(result.stdout) if result.returncode == 0 else None


def finish(proc: subprocess.Popen, timeout: float) -> int:
    """Wait for `proc` (a process group leader), then kill what is left of its group (a Flink
    job server, a Prism process); on timeout kill the group first. Returns the exit status."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        proc.wait()
        raise
    finally:
        _kill_group(proc.pid)


def kill_run(proc: subprocess.Popen) -> None:
    """Kill a run started by `EngineNetns.popen` and everything it started."""
    _kill_group(proc.pid)
    proc.wait()


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _start_netns(log: Path) -> int:
    """Start the namespace holder; return its pid once loopback is up inside."""
    _require("ip", "iproute2")
    unshare = [_require("unshare", "util-linux"), "--net"]
    if os.geteuid() != 0:
        unshare.append("--map-root-user")
    with open(log, "ab") as sink:
        proc = subprocess.Popen(
            [*unshare, "--", "sh", "-c", "ip link set lo up && exec sleep infinity"],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceStartError(f"could not create a network namespace (exit {proc.returncode}):\n{_log_tail(log)}")
        with contextlib.suppress(OSError):
            if Path(f"/proc/{proc.pid}/comm").read_text().strip() == "sleep":  # `ip link set lo up` succeeded
                return proc.pid
        time.sleep(0.05)
    _kill_group(proc.pid)
    raise ServiceStartError(f"the network namespace holder did not start:\n{_log_tail(log)}")


def _holder_alive(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return pid_alive(pid) and Path(f"/proc/{pid}/comm").read_text().strip() == "sleep"
    return False


# --------------------------------------------------------------------------------------
# State shared by the xdist workers of one pytest run
# --------------------------------------------------------------------------------------


def _runs_root() -> Path:
    root = engines_dir() / "test-runs"
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _live_users(state: Path) -> list[int]:
    users = []
    for entry in (state / "users").glob("*"):
        if entry.name.isdigit() and pid_alive(int(entry.name)):
            users.append(int(entry.name))
        else:
            entry.unlink(missing_ok=True)
    return users


def _stop_everything(state: Path) -> None:
    """Stop the cluster (by its pid files), the namespace holder, and remove the state."""
    if (state / "flink").is_dir():
        subprocess.run(
            ["bash", str(ENGINES_SCRIPT), "flink-down"],
            env={**os.environ, "TRACKPIPE_FLINK_DIR": str(state / "flink")},
            capture_output=True,
            timeout=120,
        )
    with contextlib.suppress(OSError, ValueError):
        holder = int((state / "netns.pid").read_text())
        if _holder_alive(holder):
            _kill_group(os.getpgid(holder))
    shutil.rmtree(state, ignore_errors=True)


def _reap_abandoned(root: Path, keep: Path) -> None:
    """Stop what a killed pytest run left (its workers are all gone)."""
    for state in root.iterdir():
        if state.is_dir() and state != keep and not _live_users(state):
            _stop_everything(state)


@dataclass
class _Shared:
    state: Path
    netns: EngineNetns


@contextlib.contextmanager
def _shared_state() -> Iterator[_Shared]:
    root = _runs_root()
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID", f"pid{os.getpid()}")[:16]
    state = root / run_id
    with _flock(root / ".lock"):
        _reap_abandoned(root, keep=state)
        (state / "users").mkdir(parents=True, exist_ok=True)
        holder = int((state / "netns.pid").read_text()) if (state / "netns.pid").exists() else 0
        if not _holder_alive(holder):
            holder = _start_netns(state / "netns.log")
            (state / "netns.pid").write_text(str(holder))
        (state / "users" / str(os.getpid())).touch()
    try:
        yield _Shared(state, EngineNetns(holder))
    finally:
        with _flock(root / ".lock"):
            (state / "users" / str(os.getpid())).unlink(missing_ok=True)
            if not _live_users(state):
                _stop_everything(state)


# --------------------------------------------------------------------------------------
# Flink
# --------------------------------------------------------------------------------------


@dataclass
class FlinkCluster:
    """The test run's Flink cluster (REST on 127.0.0.1:8081 inside `netns`)."""

    netns: EngineNetns
    folder: Path  # TRACKPIPE_FLINK_DIR: conf/, log/, pid/, tmp/
    master: str = FLINK_MASTER

    def script(self, command: str) -> subprocess.CompletedProcess:
        """`scripts/engines.sh <command>` for this cluster, inside the namespace."""
        env = {**os.environ, "TRACKPIPE_FLINK_DIR": str(self.folder)}
        return self.netns.run(["bash", ENGINES_SCRIPT, command], cwd=self.folder, env=env, timeout=FLINK_UP_TIMEOUT_S)

    def up(self) -> str:
        result = self.script("flink-up")
        if result.returncode != 0:
            raise ServiceStartError(f"flink-up failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def rest(self, path: str):
        return self.netns.http_json(f"http://{self.master}{path}")

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[FlinkCluster]:
        """Hold the cluster alone (one job at a time; the kill test takes the TaskManager away)."""
        with _flock(self.folder.parent / "jobs.lock"):
            yield self

    def taskmanager_pids(self) -> list[int]:
        pid_file = self.folder / "pid" / "flink-trackpipe-taskexecutor.pid"
        pids = [int(p) for p in pid_file.read_text().split()] if pid_file.exists() else []
        return [p for p in pids if pid_alive(p)]

    def job_ids(self) -> set[str]:
        return {job["jid"] for job in (self.rest("/jobs/overview") or {}).get("jobs", [])}

    def wait_healthy(self, timeout: float = 60) -> None:
        """Until exactly one TaskManager with all its slots is registered (after a kill, the
        dead one is dropped at the heartbeat timeout, 10 s)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            overview = self.rest("/overview") or {}
            if overview.get("taskmanagers") == 1 and overview.get("slots-total") == 2:
                return
            time.sleep(0.5)
        raise AssertionError(f"the Flink cluster did not get back to 1 TaskManager / 2 slots: {self.rest('/overview')}")


@pytest.fixture(scope="session")
def engines() -> dict[str, str]:
    """The cached engines (fetched on first use): paths and versions from engines.json."""
    return fetch_engines()


@pytest.fixture(scope="session")
def engine_run_state(engines) -> Iterator[_Shared]:
    """This test run's shared state folder and network namespace (see the module docstring)."""
    with _shared_state() as shared:
        yield shared


@pytest.fixture(scope="session")
def engine_netns(engine_run_state) -> EngineNetns:
    """The loopback-only network namespace of this test run (shared by its xdist workers)."""
    return engine_run_state.netns


@pytest.fixture(scope="session")
def flink_cluster(engine_run_state) -> FlinkCluster:
    """The test run's standalone Flink 1.19 cluster: a JobManager and a TaskManager (2 slots)
    started by `scripts/engines.sh flink-up` inside the namespace; stopped when the run's last
    worker leaves. Jobs must run inside `flink_cluster.exclusive()`."""
    cluster = FlinkCluster(engine_run_state.netns, engine_run_state.state / "flink")
    cluster.folder.mkdir(parents=True, exist_ok=True)
    with cluster.exclusive():
        cluster.up()
        cluster.wait_healthy()
    return cluster


@pytest.fixture(scope="session")
def prism_binary(engines) -> str:
    """The cached Prism binary (run it inside `engine_netns`: its job port binds every interface)."""
    return engines["prism"]
