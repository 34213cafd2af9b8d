"""`make bench`: trackpipe against DuckDB on generated 1M- and 2M-event days, side by side.

    python -m trackpipe.bench [--repeat 3] [--events 1000000 2000000] [--only WORD ...] [--no-doc] [--no-flink]

1. Generates the corpora once (cached under .bench/, keyed by size, seed and shape): one
   production-shaped day of logs (`trackpipe generate --shape production`, 16 files).
2. For each corpus, `--repeat` rounds, the jobs alternating within a round: trackpipe with
   default options (`trackpipe run --no-package`), with one in-memory worker, with two worker
   processes, with research packages; DuckDB doing the same tolerant job and DuckDB's plain
   read_json (trackpipe.bench.baselines, 2 threads each).
3. Measures wall time, events/s and the peak RSS of the whole process tree (sampled every
   50 ms from /proc), and reports medians and the targets (ratios to the DuckDB jobs, scaling,
   two workers against one, memory).
4. Profiles where trackpipe's CPU goes, per stage, by running each stage's plain code on the
   biggest file in one process (trackpipe.bench.stage_profile).
5. Writes docs/benchmarks.md with the figures, the machine and the command.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from trackpipe.bench.corpora import CACHE, ROOT, corpus

DOC = ROOT / "docs" / "benchmarks.md"


def _tree_rss_kb(pid: int) -> int:
    """RSS of a process and all its descendants, in KB."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            ppid, pages = int(fields[1]), int(fields[21])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = pages * (os.sysconf("SC_PAGE_SIZE") // 1024)
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += rss.get(current, 0)
        todo.extend(children.get(current, []))
    return total


def measure(cmd: list[str], env: dict | None = None) -> dict:
    """Run a command; wall seconds and peak RSS (KB) of its whole process tree."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss_kb(proc.pid))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed:\n{err[-2000:]}")
    return {"seconds": wall, "peak_rss_mb": peak / 1024, "stdout": out}


DEFAULT = "trackpipe, default options"
ONE = "trackpipe, 1 worker (in memory)"
TWO = "trackpipe, 2 worker processes"
PACKAGES = "trackpipe + research packages, default options"
TOLERANT = "DuckDB, same tolerant job (2 threads)"
PLAIN = "DuckDB read_json (2 threads)"
FLINK = "trackpipe on a local Flink cluster (parallelism 2)"
FLINK_MASTER = "127.0.0.1:8081"  # scripts/engines.sh flink-up


def _jobs(folder: Path, out: Path) -> dict[str, list[str]]:
    files = sorted(str(p) for p in (folder / "logs").rglob("*") if p.is_file())
    py = sys.executable
    pattern = str(folder / "logs" / "**" / "tracking.log-*")
    run = [py, "-m", "trackpipe.cli", "run", "--input", pattern, "--quiet"]

    def duck(function: str, name: str) -> list[str]:
        code = (
            f"import json,sys; from trackpipe.bench.baselines import {function}; print(json.dumps({function}({files!r}, sys.argv[1], 2)))"
        )
        return [py, "-c", code, str(out / name)]

    return {
        DEFAULT: run + ["--no-package", "--output", str(out / "tp")],
        ONE: run + ["--no-package", "--output", str(out / "tp1"), "--direct_running_mode", "in_memory"],
        TWO: run + ["--no-package", "--output", str(out / "tp2"), "--direct_running_mode", "multi_processing", "--direct_num_workers", "2"],
        PACKAGES: run + ["--output", str(out / "tpp")],
        FLINK: run
        + ["--no-package", "--output", str(out / "tpf"), "--runner", "FlinkRunner", "--flink_master", FLINK_MASTER, "--parallelism", "2"],
        TOLERANT: duck("run", "duck"),
        PLAIN: duck("run_read_json", "duckplain"),
    }


def bench_corpus(events: int, repeat: int, only: list[str] | None = None, flink: bool = False) -> dict:
    """Every job on one corpus, `repeat` rounds, the jobs alternating within a round (so a slow
    moment of the machine does not fall on one job only). The Flink job only with `flink`."""
    folder = corpus(events)
    expected = json.loads((folder / "expected.json").read_text())
    lines = expected["lines_read"]
    work = CACHE / "runs"
    jobs = {
        name: cmd for name, cmd in _jobs(folder, work).items() if (not only or any(o in name for o in only)) and (flink or name != FLINK)
    }
    runs: dict[str, list[dict]] = {name: [] for name in jobs}
    for i in range(repeat):
        for name, cmd in jobs.items():
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            result = measure(cmd)
            runs[name].append(result)
            print(
                f"bench: {events:,} events  {name:<48} round {i + 1}: {result['seconds']:6.1f} s  peak {result['peak_rss_mb']:6.0f} MB",
                flush=True,
            )
    shutil.rmtree(work, ignore_errors=True)
    results = {
        name: {
            "seconds": statistics.median(r["seconds"] for r in rs),
            "all_seconds": [round(r["seconds"], 2) for r in rs],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
            "events_per_second": lines / statistics.median(r["seconds"] for r in rs),
        }
        for name, rs in runs.items()
    }
    biggest = max(f["lines"] for f in expected["files"]) / lines
    return {"events": events, "lines": lines, "files": len(expected["files"]), "biggest_share": biggest, "results": results}


@contextlib.contextmanager
def flink_cluster(wanted: bool):
    """Yields whether the Flink job can run: a cluster already answering on FLINK_MASTER is used
    as it is; else `scripts/engines.sh flink-up` starts one, and `flink-down` stops it after."""
    if not wanted:
        yield False
        return
    host, port = FLINK_MASTER.split(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        answering = True
    except OSError:
        answering = False
    if answering:
        yield True
        return
    script = str(ROOT / "scripts" / "engines.sh")
    started = subprocess.run(["bash", script, "flink-up"], cwd=ROOT, capture_output=True, text=True)
    if started.returncode != 0:
        reason = (started.stderr.strip() or started.stdout.strip()).splitlines()[-1:] or ["no output"]
        print(f"bench: no Flink row: scripts/engines.sh flink-up failed: {reason[0]}", flush=True)
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(["bash", script, "flink-down"], cwd=ROOT, capture_output=True)


def targets(corpora: list[dict]) -> list[tuple[str, float, float]]:
    """(what, measured, limit) for the targets of `make bench` (issue #17), where measured."""
    out = []
    first = corpora[0]["results"]

    def ratio(a: str, b: str, results=first):
        return results[a]["seconds"] / results[b]["seconds"] if a in results and b in results else None

    for label, value, limit in (
        (f"default options / {PLAIN}", ratio(DEFAULT, PLAIN), 2.0),
        (f"default options / {TOLERANT}", ratio(DEFAULT, TOLERANT), 0.5),
        ("2 workers / 1 worker (biggest file ~half the lines)", ratio(TWO, ONE), 0.6),
        ("peak RSS of the process tree, default options (GB)", first[DEFAULT]["peak_rss_mb"] / 1024 if DEFAULT in first else None, 2.0),
    ):
        if value is not None:
            out.append((label, value, limit))
    if len(corpora) >= 2 and DEFAULT in first and DEFAULT in corpora[1]["results"]:
        growth = corpora[1]["results"][DEFAULT]["seconds"] / first[DEFAULT]["seconds"]
        out.append((f"{corpora[1]['events']:,}-event day / {corpora[0]['events']:,}-event day", growth, 2.1))
    return out


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def write_doc(corpora: list[dict], profile: str, command: str) -> None:
    import duckdb
    from apache_beam import __version__ as beam_version

    first = corpora[0]
    lines = [
        "# Benchmarks",
        "",
        f"Measured {_dt.date.today().isoformat()} with `{command}` on {machine()}; "
        f"Apache Beam {beam_version}, DuckDB {duckdb.__version__}. Medians of {len(first['results'][next(iter(first['results']))]['all_seconds'])} rounds "
        "in which the jobs alternate; peak RSS is the",
        "largest resident memory of the whole process tree (driver and worker processes), sampled every 50 ms; for the",
        "Flink row that is the launcher and its LOOPBACK workers, not the cluster's JVMs.",
        "",
        f"The corpus is a production-shaped day (`trackpipe generate --seed 42 --files {first['files'] - 1} --shape production`): the biggest",
        f"file holds {first['biggest_share']:.0%} of the lines and is plain text, two more gzip files a third, small gzip files the rest;",
        "~3% duplicates, ~0.4% bad and blank lines, logger prefixes. Every job reads the same files and does the same job: parse,",
        "deduplicate, split research / internal BI, write Parquet partitioned by stream and day. trackpipe runs with",
        "`--no-package` except in the packages row (research packages are an output DuckDB does not make). The DuckDB jobs",
        "are in `trackpipe/bench/baselines.py`: the tolerant one reads lines as text the way trackpipe must; `read_json` is the",
        "fast engine a user would reach for first, which drops every line behind a logger prefix.",
        "",
        "| events | job | wall (median) | rounds | events/s | peak RSS |",
        "|---|---|---|---|---|---|",
    ]
    for c in corpora:
        for name, r in c["results"].items():
            lines.append(
                f"| {c['events']:,} | {name} | {r['seconds']:.1f} s | {', '.join(f'{s:.1f}' for s in r['all_seconds'])} | "
                f"{r['events_per_second']:,.0f} | {r['peak_rss_mb']:,.0f} MB |"
            )
    lines += ["", "| target | measured | limit | |", "|---|---|---|---|"]
    for label, value, limit in targets(corpora):
        lines.append(f"| {label} | {value:.2f} | <= {limit} | {'met' if value <= limit else 'NOT MET'} |")
    lines += ["", "## Where trackpipe's time goes", "", profile.rstrip(), ""]
    extra = ROOT / "docs" / "benchmarks-notes.md"
    if extra.exists():
        lines += [extra.read_text().rstrip(), ""]
    DOC.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 2_000_000])
    parser.add_argument("--only", nargs="+", help="run only the jobs whose name contains one of these words")
    parser.add_argument("--no-doc", action="store_true", help="print the figures, do not rewrite docs/benchmarks.md")
    parser.add_argument("--no-flink", action="store_true", help="leave out the Flink row (it needs `make engines`: Java 17, Maven, Go)")
    args = parser.parse_args(argv)
    from trackpipe.console import quiet_beam_logging

    quiet_beam_logging()
    command = (
        "make bench"
        if argv is None and len(sys.argv) == 1
        else "python -m trackpipe.bench " + " ".join(argv if argv is not None else sys.argv[1:])
    )
    wants_flink = not args.no_flink and (not args.only or any(o in FLINK for o in args.only))
    with flink_cluster(wants_flink) as flink:
        # The Flink row on the first (smallest) day only: it is there to compare engines.
        corpora = [bench_corpus(n, args.repeat, args.only, flink=flink and i == 0) for i, n in enumerate(args.events)]
    from trackpipe.bench.stage_profile import profile_text

    profile = profile_text(corpus(args.events[0]))
    print(profile)
    if not args.no_doc:
        write_doc(corpora, profile, command)
        print(f"bench: wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
