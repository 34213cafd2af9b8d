"""Where trackpipe's time goes, stage by stage: each stage's plain code on the largest file of a
corpus, in one process, with the same memory settings as the pipeline's workers. The sum is the
CPU cost per event of a run; what a whole run adds on top is Beam (process start-up, moving
elements between stages, waiting at stage boundaries), which the benchmark table shows."""

from __future__ import annotations

import gc
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from trackpipe.config import Config
from trackpipe.events import partitions as parts
from trackpipe.events.chunks import ChunkBuilder
from trackpipe.events.duplicates import decide, shard_of
from trackpipe.events.lines import iter_lines
from trackpipe.events.parse import LineParser
from trackpipe.runtime.memory import keep_freed_memory
from trackpipe.storage.formats import TableWriter

STAGES = [
    ("read: gunzip and split lines", "gunzip"),
    ("read: parse lines into events (orjson, fields, fingerprints)", "parse"),
    ("read: build Arrow batches", "build"),
    ("read: stage chunk (Arrow IPC, uncompressed)", "stage"),
    ("deduplicate: decide per shard (fingerprints only)", "dedup"),
    ("write: read chunk back, apply decisions, cut partitions", "partition"),
    ("write: encode Parquet (zstd)", "parquet"),
]


def profile(folder: Path) -> tuple[dict[str, float], int]:
    keep_freed_memory()
    path = max((p for p in (folder / "logs").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    config = Config()
    parser = LineParser(config)
    times = dict.fromkeys((key for _, key in STAGES), 0.0)
    scratch = Path(tempfile.mkdtemp(prefix="tp-profile-"))
    gc.disable()
    try:
        start = time.process_time()
        with open(path, "rb") as stream:
            lines = list(iter_lines(stream, str(path), config.read.max_line_bytes))
        times["gunzip"] = time.process_time() - start
        builder = ChunkBuilder(parser, str(path), len(lines) + 1, 1 << 40, config.read.reject_line_chars)
        seal = builder._seal_batch  # timed separately: the batch building inside add()

        def timed_seal():
            t0 = time.process_time()
            seal()
            times["build"] += time.process_time() - t0

        builder._seal_batch = timed_seal
        start = time.process_time()
        for number, line in enumerate(lines, 1):
            builder.add(number, line)
        chunk = builder.build()
        times["parse"] = time.process_time() - start - times["build"]
        events = chunk.table.num_rows
        start = time.process_time()
        spill = scratch / "chunk.arrow"
        with pa.OSFile(str(spill), "wb") as sink, pa.ipc.new_file(sink, chunk.table.schema) as writer:
            writer.write_table(chunk.table, max_chunksize=events)
        times["stage"] = time.process_time() - start
        start = time.process_time()
        shards = shard_of(chunk.fingerprints, 32)
        decisions = [decide([(chunk.key, chunk.fingerprints[shards == s])], 5_000_000).get(chunk.key) for s in range(32)]
        found = [d for d in decisions if d is not None]
        times["dedup"] = time.process_time() - start
        start = time.process_time()
        table = pa.ipc.open_file(pa.memory_map(str(spill))).read_all()
        dec = np.concatenate(found) if found else np.empty(0, parts.DECISION_DTYPE)
        keep, copies = parts.apply_decisions(table.num_rows, dec)
        groups = list(parts.kept_partitions(table, keep, copies, parts.selected(parts.days_of(table), None)))
        times["partition"] = time.process_time() - start
        start = time.process_time()
        for i, (_stream, _date, rows) in enumerate(groups):
            writer = TableWriter(str(scratch / f"p{i}.parquet"), rows.schema, "parquet", config.output.parquet_compression)
            writer.write(rows)
            writer.close()
        times["parquet"] = time.process_time() - start
    finally:
        gc.enable()
        shutil.rmtree(scratch, ignore_errors=True)
    return times, events


def profile_text(folder: Path) -> str:
    times, events = profile(folder)
    total = sum(times.values())
    rows = [
        f"Per-stage CPU cost on the largest file of the 1M-event corpus ({events:,} events), one process "
        "(`python -m trackpipe.bench.stage_profile`):",
        "",
        "| stage | µs per event | share |",
        "|---|---|---|",
    ]
    for label, key in STAGES:
        rows.append(f"| {label} | {times[key] / events * 1e6:.1f} | {times[key] / total:.0%} |")
    rows.append(f"| **total** | **{total / events * 1e6:.1f}** | 100% |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    from trackpipe.bench.corpora import corpus

    print(profile_text(corpus(1_000_000)))
