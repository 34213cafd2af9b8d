"""`make bench`: trackpipe against DuckDB on generated 1M- and 2M-event days, side by side.

    python -m trackpipe.bench [--repeat 3] [--events 1000000 2000000] [--quick]

1. Generates the corpora once (cached under .bench/, keyed by size and seed): one day of
   logs in 8 gzip files, made by `trackpipe generate`.
2. For each corpus, runs in turn, `--repeat` times each: trackpipe (`trackpipe run
   --no-package`, DirectRunner with 2 worker processes), the same with one in-memory worker,
   the DuckDB baseline (trackpipe.bench.baselines, 2 threads) of the same job, and trackpipe
   making research packages too (an output DuckDB does not make).
3. Measures wall time, events/s and the peak RSS of the whole process tree (sampled every
   50 ms from /proc), and reports medians and the ratio trackpipe / DuckDB.
4. Profiles where trackpipe's time goes, per stage, by running each stage's plain code on
   one file in one process (trackpipe.bench.stage_profile).
5. Writes docs/benchmarks.md with the figures, the machine and the command.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
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


def _jobs(folder: Path, out: Path) -> dict[str, list[str]]:
    files = sorted(str(p) for p in (folder / "logs").rglob("*.gz"))
    py = sys.executable
    glob = str(folder / "logs" / "**" / "*.gz")
    run = [py, "-m", "trackpipe.cli", "run", "--input", glob, "--quiet"]
    two = ["--direct_running_mode", "multi_processing", "--direct_num_workers", "2"]
    return {
        "trackpipe (2 worker processes)": run + ["--no-package", "--output", str(out / "tp2"), *two],
        "trackpipe (1 process, in memory)": run + ["--no-package", "--output", str(out / "tp1")],
        "trackpipe + research packages (2 worker processes)": run + ["--output", str(out / "tpp"), *two],
        "DuckDB baseline (2 threads)": [
            py,
            "-c",
            f"import json,sys; from trackpipe.bench.baselines import run; print(json.dumps(run({files!r}, sys.argv[1], 2)))",
            str(out / "duck"),
        ],
    }


def bench_corpus(events: int, repeat: int, only: list[str] | None = None) -> dict:
    folder = corpus(events)
    expected = json.loads((folder / "expected.json").read_text())
    lines = expected["lines_read"]
    gz_mb = sum(f["bytes"] for f in expected["files"]) / 1e6
    work = CACHE / "runs"
    results = {}
    for name, cmd in _jobs(folder, work).items():
        if only and not any(o in name for o in only):
            continue
        runs = []
        for i in range(repeat):
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            result = measure(cmd)
            runs.append(result)
            print(
                f"bench: {events:,} events  {name:<34} run {i + 1}: {result['seconds']:6.1f} s  peak {result['peak_rss_mb']:6.0f} MB",
                flush=True,
            )
        results[name] = {
            "seconds": statistics.median(r["seconds"] for r in runs),
            "all_seconds": [round(r["seconds"], 2) for r in runs],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            "events_per_second": lines / statistics.median(r["seconds"] for r in runs),
        }
    shutil.rmtree(work, ignore_errors=True)
    return {"events": events, "lines": lines, "gz_mb": gz_mb, "files": len(expected["files"]), "results": results}


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

    tp, duck = "trackpipe (2 worker processes)", "DuckDB baseline (2 threads)"
    lines = [
        "# Benchmarks",
        "",
        f"Measured {_dt.date.today().isoformat()} with `{command}` on {machine()}; "
        f"Apache Beam {beam_version}, DuckDB {duckdb.__version__}. Medians of the repeated runs; peak RSS is the",
        "largest resident memory of the whole process tree (driver and worker processes), sampled every 50 ms.",
        "",
        "The corpus is one day of generated logs (`trackpipe generate --seed 42`, 8 gzip files, ~3% duplicates,",
        "~0.4% bad and blank lines, logger prefixes). Every job reads the same files and does the same job: parse, deduplicate,",
        "split research / internal BI, write Parquet partitioned by stream and day. trackpipe runs with `--no-package`",
        "(research packages are an extra output DuckDB does not make). The DuckDB baseline is `trackpipe/bench/baselines.py`.",
        "",
        "| events | job | wall (median) | runs | events/s | peak RSS | ratio to DuckDB |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in corpora:
        base = c["results"].get(duck, {}).get("seconds")
        for name, r in c["results"].items():
            ratio = f"{r['seconds'] / base:.2f}" if base else "-"
            lines.append(
                f"| {c['events']:,} | {name} | {r['seconds']:.1f} s | {', '.join(f'{s:.1f}' for s in r['all_seconds'])} | "
                f"{r['events_per_second']:,.0f} | {r['peak_rss_mb']:,.0f} MB | {ratio} |"
            )
    if len(corpora) >= 2 and tp in corpora[0]["results"] and tp in corpora[1]["results"]:
        growth = corpora[1]["results"][tp]["seconds"] / corpora[0]["results"][tp]["seconds"]
        lines += [
            "",
            f"Scaling: the {corpora[1]['events']:,}-event day takes {growth:.2f}x the {corpora[0]['events']:,}-event day (target <= 2.1x).",
        ]
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
    args = parser.parse_args(argv)
    from trackpipe.console import quiet_beam_logging

    quiet_beam_logging()
    command = (
        "make bench"
        if argv is None and len(sys.argv) == 1
        else "python -m trackpipe.bench " + " ".join(argv if argv is not None else sys.argv[1:])
    )
    corpora = [bench_corpus(n, args.repeat, args.only) for n in args.events]
    from trackpipe.bench.stage_profile import profile_text

    profile = profile_text(corpus(args.events[0]))
    print(profile)
    if not args.no_doc:
        write_doc(corpora, profile, command)
        print(f"bench: wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
