"""Before/after benchmark of trackpipe's object-store layer on the S3 tests' 20k-event run.

usage: bench_object_stores.py [--rounds N] [--out results.jsonl]

Builds two trees from this checkout's git history (run it from the repository, after `make install`):
  before: commit 37890c5, the hand-written boto3 layer (trackpipe/storage/s3.py); gs:// on
          Beam's GCS filesystem;
  after:  HEAD, the storage layer on pyarrow.fs (trackpipe/storage/object_stores.py).
Starts SeaweedFS and fake-gcs-server with the test suite's own code (tests/services.py,
tests/gcs_services.py), each also behind a counting HTTP proxy, uploads the corpus
(`generate(20_000, seed=21, days=2, files=3)`, as tests/test_s3.py), and runs
`trackpipe run --input <store>://bench/logs/**/tracking.log-*.gz --output <store>://bench/out-...`
N interleaved rounds per store (before, after, before, after, ...) straight to the server for
wall time, then once through the proxy for request counts. Prints a markdown table of medians.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PY = str(REPO / ".venv" / "bin" / "python")
HERE = Path(__file__).resolve().parent
BEFORE_COMMIT = "37890c5"  # the last commit with the hand-written boto3 layer (trackpipe/storage/s3.py)


def git(*args) -> bytes:
    return subprocess.run(["git", "-C", str(REPO), *args], check=True, capture_output=True).stdout


def build_trees(base: Path) -> dict[str, Path]:
    """before: the whole tree of BEFORE_COMMIT; after: the whole tree of HEAD."""
    trees = {}
    for name, commit in (("before", BEFORE_COMMIT), ("after", "HEAD")):
        archive = base / f"{name}.tar"
        archive.write_bytes(git("archive", commit))
        tree = base / name
        tree.mkdir()
        with tarfile.open(archive) as tar:
            tar.extractall(tree, filter="data")
        trees[name] = tree
    return trees


def start_proxy(listen: int, target: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([PY, str(HERE / "countproxy.py"), str(listen), str(target), str(log)], start_new_session=True)
    time.sleep(0.5)
    return proc


def count(log: Path, start: int, store: str) -> dict:
    time.sleep(0.5)
    with open(log) as handle:
        handle.seek(start)
        lines = [json.loads(line) for line in handle if line.strip()]
    reqs = {r["rid"]: r for r in lines if r["ev"] == "req"}
    ops = Counter()
    for r in reqs.values():
        path, method = r["p"], r["m"]
        if store == "s3":
            op = method + (" list" if "list-type" in path else " delete-batch" if "?delete" in path else "")
        else:
            kind = (
                "upload"
                if path.startswith("/upload")
                else "download"
                if "alt=media" in path or path.startswith("/download")
                else "copy"
                if "rewriteTo" in path or "copyTo" in path
                else "list"
                if "/o?" in path or path.endswith("/o")
                else "batch"
                if "batch" in path
                else "object/bucket"
            )
            op = f"{method} {kind}"
        ops[op] += 1
    return {"requests": len(reqs), "by_op": dict(sorted(ops.items()))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "objstore-bench.jsonl"))
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.gcs_services import GcsServer, _answers, _command, find_fake_gcs_server, start_fake_gcs_server
    from tests.services import _free_ports, _wait_until, start_seaweedfs
    from trackpipe.generator.generate import generate

    base = Path(tempfile.mkdtemp(prefix="objstore-bench-", dir="/tmp"))
    servers, procs = [], []
    try:
        trees = build_trees(base)
        generate(str(base / "corpus"), 20_000, seed=21, days=2, files=3)
        logs = base / "corpus" / "logs"
        s3 = start_seaweedfs(base / "seaweedfs")
        servers.append(s3)
        gcs = start_fake_gcs_server(base / "gcs")
        servers.append(gcs)
        # a second GCS server whose upload URLs point at its proxy, for counting
        (gport, s3proxy, gproxy) = _free_ports(3)
        cmd = _command(find_fake_gcs_server(), gport)
        cmd = [
            c.replace(f"127.0.0.1:{gport}", f"127.0.0.1:{gproxy}") if c.startswith(("-public-host", "-external-url")) else c for c in cmd
        ]
        counted = GcsServer(subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT), base, gport)
        servers.append(counted)
        _wait_until(lambda: _answers(counted.endpoint_url), 30)
        procs.append(start_proxy(s3proxy, s3.ports["s3"], base / "proxy-s3.jsonl"))
        procs.append(start_proxy(gproxy, gport, base / "proxy-gcs.jsonl"))
        client = s3.client()
        client.create_bucket(Bucket="bench")
        for path in sorted(logs.rglob("*")):
            if path.is_file():
                client.upload_file(str(path), "bench", f"logs/{path.relative_to(logs)}")
        for server in (gcs, counted):
            bucket = server.client().create_bucket("bench")
            for path in sorted(logs.rglob("*")):
                if path.is_file():
                    bucket.blob(f"logs/{path.relative_to(logs)}").upload_from_filename(str(path))
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STORAGE_EMULATOR", "GOOGLE_"))}
        envs = {
            ("s3", "direct"): {**clean, **s3.env()},
            ("s3", "proxy"): {**clean, **s3.env(), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{s3proxy}"},
            ("gs", "direct"): {**clean, **gcs.env()},
            ("gs", "proxy"): {**clean, **counted.env(), "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{gproxy}"},
        }
        logs_of = {"s3": base / "proxy-s3.jsonl", "gs": base / "proxy-gcs.jsonl"}
        results = []

        def run(tree: str, store: str, mode: str, n: int) -> dict:
            out = f"{store}://bench/out-{tree}-{mode}-{n}-{int(time.time() * 1000)}"
            command = [
                PY,
                "-m",
                "trackpipe.cli",
                "run",
                "--input",
                f"{store}://bench/logs/**/tracking.log-*.gz",
                "--output",
                out,
                "--quiet",
            ]
            env = {**envs[(store, mode)], "PYTHONPATH": str(trees[tree])}
            start = os.path.getsize(logs_of[store]) if mode == "proxy" else 0
            usage = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.monotonic()
            done = subprocess.run(command, env=env, cwd=trees[tree], capture_output=True, text=True, timeout=900)
            wall = time.monotonic() - t
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
            record = {
                "tree": tree,
                "store": store,
                "mode": mode,
                "round": n,
                "wall_s": round(wall, 2),
                "cpu_s": round(cpu, 2),
                "rc": done.returncode,
            }
            if done.returncode:
                record["error"] = done.stderr.strip().splitlines()[-1][:300] if done.stderr.strip() else "?"
            if mode == "proxy":
                record.update(count(logs_of[store], start, "s3" if store == "s3" else "gs"))
            print(json.dumps(record), flush=True)
            results.append(record)
            return record

        for store in ("s3", "gs"):
            for tree in ("before", "after"):
                run(tree, store, "direct", 0)  # warm-up (page cache, first imports); not counted
            for n in range(1, args.rounds + 1):
                for tree in ("before", "after") if n % 2 else ("after", "before"):
                    run(tree, store, "direct", n)
            for tree in ("before", "after"):
                run(tree, store, "proxy", 1)
        with open(args.out, "a") as handle:
            for record in results:
                handle.write(json.dumps(record) + "\n")
        print()
        print(f"| store | layer | wall, median of {args.rounds} (s) | CPU of the run, median (s) | requests | failed runs |")
        print("|---|---|---|---|---|---|")
        for store in ("s3", "gs"):
            for tree in ("before", "after"):
                timed = [r for r in results if (r["store"], r["tree"], r["mode"]) == (store, tree, "direct") and r["round"] and not r["rc"]]
                walls = [r["wall_s"] for r in timed]
                cpus = [r["cpu_s"] for r in timed]
                failed = [r for r in results if (r["store"], r["tree"]) == (store, tree) and r["rc"]]
                proxied = [r for r in results if (r["store"], r["tree"], r["mode"]) == (store, tree, "proxy")]
                median = f"{statistics.median(walls):.2f}" if walls else "-"
                cpu = f"{statistics.median(cpus):.2f}" if cpus else "-"
                reqs = proxied[0]["requests"] if proxied and not proxied[0]["rc"] else "-"
                print(f"| {store} | {tree} | {median} | {cpu} | {reqs} | {len(failed)} |")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
        for server in servers:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
