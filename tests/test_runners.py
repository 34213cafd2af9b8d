"""Tier 3, issue #7: the same run gives the same result on every runner, in any input order, and
from the sdist installed into a fresh virtualenv (what `--setup_file` makes Dataflow and Flink
workers do).

Runner modes compared (all local, all offline):

- `in_memory`: the default DirectRunner (trackpipe builds Beam's FnApiRunner directly);
- `multi_processing`: the same with `--direct_running_mode multi_processing --direct_num_workers 2`,
  whose workers import trackpipe fresh, as remote workers do;
- `portable_embed`: Beam's portable path, `--runner PortableRunner --job_endpoint embed
  --environment_type LOOPBACK`: the pipeline is translated to its portable proto, submitted to
  an in-process job service (apache_beam/runners/portability/local_job_service.py) and run by
  an SDK worker that the runner starts in this process (the LOOPBACK environment);
- `external_services` (one test): the same portable path against a job service and an SDK worker
  pool that each run in their own process (`local_job_service_main`, `worker_pool_main`), with
  `--environment_type EXTERNAL`: the shape of a Flink cluster with SDK-harness sidecars.

"Identical" means: warehouse rows (every column, sorted by event_id), duplicates audit rows,
rejects, research package file names and bytes, and the manifest except run_id, started_at,
published_at and options. The runner modes are also held to byte-identical files.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.helpers import ROOT, files_under, manifest, read_jsonl_gz, read_rows, run_cli

pytestmark = pytest.mark.slow

MODES = {
    "in_memory": (),
    "multi_processing": ("--direct_running_mode", "multi_processing", "--direct_num_workers", "2"),
    "portable_embed": ("--runner", "PortableRunner", "--job_endpoint", "embed", "--environment_type", "LOOPBACK"),
}
RUN_SPECIFIC = ("run_id", "started_at", "published_at", "options")
OUTPUT_FOLDERS = ("warehouse", "duplicates", "rejects", "research_package")
PACKAGES = ("trackpipe", "transforms", "pipelines")
COPY_IGNORE = shutil.ignore_patterns(
    ".venv", ".git", "__pycache__", "*.egg-info", ".ruff_cache", ".pytest_cache", "build", "dist", "out", ".bench", "test-artifacts"
)


def _run(inputs: list[str], out: Path, *extra: str, timeout: int = 600):
    args = ["run", "--output", str(out), "--quiet", *extra]
    for pattern in inputs:
        args += ["--input", pattern]
    return run_cli(*args, timeout=timeout)


def _run_modes(logs: Path, base: Path) -> dict[str, Path]:
    outs = {}
    for mode, flags in MODES.items():
        outs[mode] = base / mode
        _run([str(logs / "**")], outs[mode], *flags)
    return outs


def snapshot(out: Path, logs: Path, names: dict[str, str] | None = None) -> dict:
    """Everything a run produced that must not depend on how it ran, with input paths made
    relative to `logs` (and translated through `names`, new relative path -> original)."""
    names = names or {}

    def source(path: str) -> str:
        rel = Path(path).relative_to(logs).as_posix()
        return names.get(rel, rel)

    rows = read_rows(out).to_pylist()
    for row in rows:
        row["source_file"] = source(row["source_file"])
    rows.sort(key=lambda r: (r["event_id"], r["stream"]))
    duplicates = pq.ParquetDataset(out / "duplicates").read().to_pylist() if (out / "duplicates").exists() else []
    rejects = read_jsonl_gz((out / "rejects").glob("*.jsonl.gz"))
    for record in duplicates + rejects:
        record["source"] = source(record["source"])
    duplicates.sort(key=lambda d: (d["source"], d["line_number"]))
    rejects.sort(key=lambda r: (r["source"], r["line_number"]))
    m = {k: v for k, v in manifest(out).items() if k not in RUN_SPECIFIC}
    m["inputs"] = sorted(({**i, "path": source(i["path"])} for i in m["inputs"]), key=lambda i: i["path"])
    for error in m["input_errors"]:
        error["file"] = source(error["file"])
    package = out / "research_package"
    return {
        "rows": rows,
        "duplicates": duplicates,
        "rejects": rejects,
        "package": {rel: (package / rel).read_bytes() for rel in files_under(package)} if package.exists() else {},
        "manifest": m,
    }


def assert_same_snapshot(got: dict, want: dict, label: str) -> None:
    """Part by part, so a failure names what differs (and not a 20,000-row diff)."""
    for part in ("manifest", "rejects", "duplicates"):
        assert got[part] == want[part], f"{label}: {part} differ"
    assert len(got["rows"]) == len(want["rows"]), f"{label}: row counts differ"
    for a, b in zip(got["rows"], want["rows"]):
        assert a == b, f"{label}: first differing warehouse row {a['event_id']} / {b['event_id']}: " + ", ".join(
            k for k in a if a.get(k) != b.get(k)
        )
    assert sorted(got["package"]) == sorted(want["package"]), f"{label}: research package file names differ"
    for name, data in want["package"].items():
        assert got["package"][name] == data, f"{label}: research package file {name} differs"


def assert_same_files(a: Path, b: Path, label: str) -> None:
    for folder in OUTPUT_FOLDERS:
        names = files_under(a / folder) if (a / folder).exists() else []
        assert names == (files_under(b / folder) if (b / folder).exists() else []), f"{label}: file names under {folder}/ differ"
        for rel in names:
            assert (a / folder / rel).read_bytes() == (b / folder / rel).read_bytes(), f"{label}: {folder}/{rel} differs"


def assert_modes_agree(outs: dict[str, Path], logs: Path) -> dict:
    want = snapshot(outs["in_memory"], logs)
    m = want["manifest"]
    # The comparison means something only if every kind of outcome is there.
    assert m["rows_written_total"] and m["duplicates_removed"]["total"] and m["rejected_total"] and want["package"]
    assert m["reconciliation"]["balanced"]
    for mode, out in outs.items():
        if mode != "in_memory":
            assert_same_snapshot(snapshot(out, logs), want, f"{mode} vs in_memory")
            assert_same_files(out, outs["in_memory"], f"{mode} vs in_memory")
    return want


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """A small generated corpus: 20,000 events over 2 days, 3 files per server group."""
    from trackpipe.generator.generate import generate

    base = tmp_path_factory.mktemp("generated")
    generate(str(base), 20_000, 7, days=2, files=3)
    return base / "logs"


@pytest.fixture(scope="module")
def generated_runs(generated, tmp_path_factory) -> dict[str, Path]:
    return _run_modes(generated, tmp_path_factory.mktemp("generated-runs"))


def test_runner_modes_give_identical_outputs_on_the_real_samples(real_logs, tmp_path):
    outs = _run_modes(real_logs, tmp_path)
    assert_modes_agree(outs, real_logs)


def test_runner_modes_give_identical_outputs_on_a_generated_corpus(generated, generated_runs):
    want = assert_modes_agree(generated_runs, generated)
    expected = json.loads((generated.parent / "expected.json").read_text())
    assert want["manifest"]["rows_written_total"] == sum(sum(days.values()) for days in expected["rows"].values())


def test_glob_order_and_overlap_do_not_matter(generated, generated_runs, tmp_path):
    """The same files through other globs, listed in another order, one file matched twice."""
    groups = sorted(p.name for p in (generated / "tracking").iterdir())
    patterns = [str(generated / "tracking" / group / "*" / "tracking.log-*") for group in reversed(groups)]
    patterns.insert(1, str(generated / "**" / "*20261104*"))  # overlaps the others
    out = tmp_path / "out"
    _run(patterns, out)
    reference = generated_runs["in_memory"]
    assert_same_snapshot(snapshot(out, generated), snapshot(reference, generated), "reordered globs")
    assert_same_files(out, reference, "reordered globs")


def test_file_names_and_folder_order_do_not_matter(generated, generated_runs, tmp_path):
    """The same files copied under new names, into folders that sort the other way round.

    Which of two byte-identical lines is kept is decided by (file path, line), so with other
    paths the kept copy of such a pair may be the other line: rows are compared without
    `source_file`, duplicates without `source`/`line_number`, and every line must still end up
    as exactly one row or removed copy of its file. Partition file names derive from the paths,
    so only their contents are compared."""
    originals = sorted(p.relative_to(generated).as_posix() for p in generated.rglob("*") if p.is_file())
    copies = tmp_path / "copies"
    names = {}
    for index, rel in enumerate(originals):
        new = f"batch-{len(originals) - index:02d}/renamed-{index:02d}.log.gz"
        (copies / new).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(generated / rel, copies / new)
        names[new] = rel
    out = tmp_path / "out"
    _run([str(copies / "batch-*" / "*")], out)
    got = snapshot(out, copies, names)
    want = snapshot(generated_runs["in_memory"], generated)

    def per_file(snap):
        return Counter([r["source_file"] for r in snap["rows"]] + [d["source"] for d in snap["duplicates"]])

    assert per_file(got) == per_file(want)
    for snap in (got, want):
        for row in snap["rows"]:
            del row["source_file"]
        for dup in snap["duplicates"]:
            del dup["source"], dup["line_number"]
        snap["duplicates"].sort(key=repr)
        for part in snap["manifest"]["partitions"]:
            del part["files"]
        # Warehouse, audit and rejects files hold the input paths (source_file, source), so their
        # sizes follow the names: the same kinds and days must be written, of any size. Packages
        # hold no path: their sizes must not move.
        written = snap["manifest"]["bytes_written"]
        for kind in ("warehouse", "duplicates", "rejects"):
            written[kind] = _sizes_hidden(written[kind])
    assert_same_snapshot(got, want, "renamed and reordered files")


def _sizes_hidden(value):
    """The same nesting of kinds and days, every byte count replaced by whether it is > 0."""
    if isinstance(value, dict):
        return {key: _sizes_hidden(v) for key, v in value.items()}
    return value > 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            socket.create_connection(("localhost", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{proc.args} did not listen on port {port} within {timeout} s")


@pytest.fixture
def beam_services(tmp_path):
    """A Beam job service and an SDK worker pool, each in its own process, started from a folder
    outside the repo. The pool starts its workers as `python -c ...` from PATH, so the venv's
    bin goes first (in a container that is the image's python)."""
    env = _clean_env()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    services = {
        "job": ("apache_beam.runners.portability.local_job_service_main", "--port"),
        "workers": ("apache_beam.runners.worker.worker_pool_main", "--service_port"),
    }
    started, ports = [], {}
    try:
        for name, (module, flag) in services.items():
            port, log = _free_port(), tmp_path / f"{name}.log"
            with open(log, "wb") as sink:
                proc = subprocess.Popen([sys.executable, "-m", module, flag, str(port)], cwd=tmp_path, env=env, stdout=sink, stderr=sink)
            started.append(proc)
            _wait_for_port(port, proc, log)
            ports[name] = port
        yield ports
    finally:
        for proc in started:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_external_job_service_and_worker_pool_give_identical_outputs(generated, generated_runs, beam_services, tmp_path):
    """Portable runner, out-of-process job service, `--environment_type EXTERNAL` workers: the
    launch shape of Flink (job server + SDK harness sidecars), all local."""
    out = tmp_path / "out"
    flags = ("--runner", "PortableRunner", "--job_endpoint", f"localhost:{beam_services['job']}")
    flags += ("--environment_type", "EXTERNAL", "--environment_config", f"localhost:{beam_services['workers']}")
    # A worker that cannot start makes the job wait rather than fail: keep the wait bounded.
    _run([str(generated / "**")], out, *flags, timeout=300)
    reference = generated_runs["in_memory"]
    assert_same_snapshot(snapshot(out, generated), snapshot(reference, generated), "external services vs in_memory")
    assert_same_files(out, reference, "external services vs in_memory")


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSTARTUP")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _check(cmd: list, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return result


def test_sdist_installs_into_a_fresh_virtualenv_and_gives_the_same_rows(real_logs, tmp_path):
    """What `--setup_file ./setup.py` does: Beam's stager runs `python -m build --sdist
    --no-isolation` in the setup.py folder, workers `pip install` the tarball with its
    dependencies. Built from a copy of the working tree, so nothing is written into the repo;
    dependencies come from the package index through the persistent pip cache."""
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=COPY_IGNORE)
    dist = tmp_path / "dist"
    _check([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", dist, src], cwd=tmp_path)
    (tarball,) = dist.glob("trackpipe-*.tar.gz")
    with tarfile.open(tarball) as tar:
        shipped = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    needed = {"setup.py", "requirements.txt"} | {p.relative_to(src).as_posix() for pkg in PACKAGES for p in (src / pkg).glob("*.py")}
    assert not needed - shipped, f"missing from the sdist: {sorted(needed - shipped)}"

    # pip caches the wheel it builds from a local sdist by the sdist's URL: a folder named by
    # the content keeps a changed sdist from reusing a stale wheel.
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()[:16]
    (tmp_path / digest).mkdir()
    tarball = tarball.rename(tmp_path / digest / tarball.name)
    venv = tmp_path / "venv"
    _check([sys.executable, "-m", "venv", venv], cwd=tmp_path)
    _check([venv / "bin" / "python", "-m", "pip", "install", "--progress-bar", "off", tarball], cwd=tmp_path, timeout=1200)

    cwd = tmp_path / "elsewhere"  # not the repo: only the installed package can be imported
    cwd.mkdir()
    where = _check(
        [
            venv / "bin" / "python",
            "-c",
            "import trackpipe, transforms, pipelines as p; print(trackpipe.__file__, transforms.__file__, p.__file__)",
        ],
        cwd,
    )
    site = str(venv / "lib")
    assert all(path.startswith(site) for path in where.stdout.split()), where.stdout

    fresh = tmp_path / "fresh"
    _check([venv / "bin" / "trackpipe", "run", "--input", real_logs / "*", "--output", fresh, "--quiet"], cwd)
    # The module entry point of the docs, with workers in separate processes that import the
    # installed package fresh (no save_main_session, no repo on sys.path).
    fresh_mp = tmp_path / "fresh-mp"
    _check(
        [venv / "bin" / "python", "-m", "pipelines.tracking_logs", "--input", real_logs / "*", "--output", fresh_mp, "--quiet"]
        + list(MODES["multi_processing"]),
        cwd,
    )
    project = tmp_path / "project"
    _run([str(real_logs / "*")], project)
    want = snapshot(project, real_logs)
    assert want["manifest"]["rows_written_total"] > 0
    assert_same_snapshot(snapshot(fresh, real_logs), want, "fresh virtualenv")
    assert_same_snapshot(snapshot(fresh_mp, real_logs), want, "fresh virtualenv, multi_processing")


def test_snapshot_sees_a_changed_row(generated_runs, generated):
    """The comparison itself is not blind: one changed value is reported."""
    snap = snapshot(generated_runs["in_memory"], generated)
    changed = copy.deepcopy(snap)
    changed["rows"][len(changed["rows"]) // 2]["user_id"] = -1
    with pytest.raises(AssertionError, match="user_id"):
        assert_same_snapshot(changed, snap, "self-check")
