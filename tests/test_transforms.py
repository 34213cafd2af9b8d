"""Tier 2: the composite transforms in TestPipeline, checked with assert_that."""

from __future__ import annotations

import json
from pathlib import Path

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from trackpipe.config import Config
from trackpipe.events.chunks import ChunkBuilder
from trackpipe.events.duplicates import CLIENT_RESEND, DECISION_DTYPE, EXACT, KEEP, decide
from trackpipe.events.parse import LineParser
from trackpipe.storage.workdir import WorkDir
from transforms.dedupe import DeduplicateEvents
from transforms.read import FINGERPRINTS, REJECTS, STATS, InputFile, ReadAndStage
from transforms.stats import MergeStatsFn

T0 = "2026-11-02T10:00:00+00:00"


def _line(source="browser", t=T0, **extra):
    obj = {"event_type": "seq_goto", "event_source": source, "username": "u", "time": t, "event": "{}"}
    obj.update(extra)
    return json.dumps(obj)


def _decoded(element):
    key, blob = element
    rows = np.frombuffer(blob, dtype=DECISION_DTYPE)
    return key, sorted((int(r["row"]), int(r["kind"]), int(r["copies"])) for r in rows)


def test_read_and_stage_then_deduplicate(tmp_path):
    """Two files: exact copies across files, a browser re-send, a reject, a blank line."""
    a = tmp_path / "a.log"
    b = tmp_path / "b.log"
    a.write_text("\n".join([_line("server", user_id=1), _line(), "", "not json"]) + "\n")
    b.write_text("\n".join([_line("server", user_id=1), _line(t="2026-11-02T10:00:01+00:00")]) + "\n")
    workdir = WorkDir(str(tmp_path / "out"), "test-run")
    config = Config()
    with TestPipeline() as p:
        files = p | beam.Create([InputFile(str(a), a.stat().st_size), InputFile(str(b), b.stat().st_size)])
        staged = files | ReadAndStage(config, workdir, shards=4, skip_corrupt=False)
        decisions = staged[FINGERPRINTS] | DeduplicateEvents(config.dedup.window_seconds) | beam.Map(_decoded)
        # Decisions of a chunk may come from several shards: compare them one by one.
        assert_that(
            decisions | "PerRow" >> beam.FlatMap(lambda kv: [(kv[0].split("\x00")[0], *row) for row in kv[1]]),
            equal_to([(str(a), 0, KEEP, 2), (str(a), 1, KEEP, 2), (str(b), 0, EXACT, 0), (str(b), 1, CLIENT_RESEND, 0)]),
            label="Decisions",
        )
        stats = staged[STATS] | beam.CombineGlobally(MergeStatsFn())
        assert_that(
            stats | beam.Map(lambda s: (s["lines_read"], s["blank_lines"], s["rejected"], s["events_parsed"])),
            equal_to([(6, 1, {"not_json": 1}, 4)]),
            label="Stats",
        )
        rejects = staged[REJECTS] | beam.FlatMap(lambda kv: [(r["reason"], r["line_number"], r["line"]) for r in kv[1]])
        assert_that(rejects, equal_to([("not_json", 4, "not json")]), label="Rejects")
        chunk_rows = staged["chunks"] | beam.Map(lambda ref: (ref.source_file, ref.rows))
        assert_that(chunk_rows, equal_to([(str(a), 2), (str(b), 2)]), label="Chunks")


def test_staged_chunk_holds_the_parsed_columns(tmp_path):
    log = tmp_path / "x.log"
    log.write_text(_line("mobile", context={"org_id": "MITx", "received_at": "2026-11-02T11:00:00+00:00"}) + "\n")
    workdir = WorkDir(str(tmp_path / "out"), "r")
    with TestPipeline() as p:
        staged = p | beam.Create([InputFile(str(log), 1)]) | ReadAndStage(Config(), workdir, shards=2, skip_corrupt=False)
        assert_that(staged["chunks"] | beam.Map(lambda ref: ref.rows), equal_to([1]))
    [chunk] = list(Path(workdir.scratch_path("chunks")).iterdir())
    table = pa.ipc.open_file(pa.memory_map(str(chunk))).read_all()
    row = table.to_pylist()[0]
    assert row["org_id"] == "MITx" and row["event_source"] == "mobile" and row["line_number"] == 1
    assert row["received_at"].isoformat() == "2026-11-02T11:00:00+00:00"


def test_deduplicate_gives_the_same_decisions_for_any_shard_count(tmp_path):
    lines = [_line(t=f"2026-11-02T10:00:0{i % 3}+00:00", event=json.dumps({"i": i % 4})) for i in range(24)]
    log = tmp_path / "x.log"
    log.write_text("\n".join(lines) + "\n")
    builder = ChunkBuilder(LineParser(Config()), str(log), 1000, 1 << 30, 100)
    for number, text in enumerate(lines, 1):
        builder.add(number, text.encode())
    chunk = builder.build()
    expected = sorted(
        (int(r["row"]), int(r["kind"]), int(r["copies"])) for r in decide([(chunk.key, chunk.fingerprints)], 5_000_000)[chunk.key]
    )
    assert len(expected) == 24  # 4 identities x 6 lines: one kept with 6 copies, 5 removed, each
    for shards in (1, 3, 16):
        workdir = WorkDir(str(tmp_path / f"out{shards}"), "r")
        with TestPipeline() as p:
            staged = p | beam.Create([InputFile(str(log), 1)]) | ReadAndStage(Config(), workdir, shards=shards, skip_corrupt=False)
            decided = staged[FINGERPRINTS] | DeduplicateEvents(5.0) | beam.Map(_decoded) | beam.FlatMap(lambda kv: kv[1])
            assert_that(decided, equal_to(expected))
