"""Writing: join each staged chunk with its dedup decisions, write the partitions it feeds.

Output edge of the pipeline. Everything is written into the run's work folder; the publish
step moves complete partitions to their public places. File names come from the chunk key
(`part-<file digest>-<chunk>`), so a rerun writes the same files with the same rows.
"""
from __future__ import annotations

import apache_beam as beam
import pyarrow as pa

from trackpipe import storage
from trackpipe.config import Config
from trackpipe.workdir import WorkDir
from transforms import partitioning as parts
from transforms.chunks import chunk_file_id
from transforms.dedup_logic import DECISION_DTYPE, KEEP, KIND_NAMES
from transforms.stats import count
from transforms.timeparse import US_PER_DAY, day_to_date
from transforms.writers import EXTENSIONS, jsonl_gz_bytes, write_table

# Output tags of WriteChunkFn.
PACKAGE_FRAGMENTS = "package_fragments"
PACKAGE_BATCH_ROWS = 8192


def _by_key(ref):
    return ref.key, ref


class WriteChunkFn(beam.DoFn):
    """(chunk key, {chunk: [ChunkRef], decisions: [bytes]}) -> statistics (main output) and
    package fragments (PACKAGE_FRAGMENTS: ((package, date), (path, first batch, batches)))."""

    def __init__(self, config: Config, workdir: WorkDir, days: frozenset[int] | None, packages: bool):
        self._config = config
        self._workdir = workdir
        self._days = days
        self._packages = packages

    def setup(self):
        self._workdir.activate()

    def process(self, element):
        key, grouped = element
        refs = list(grouped["chunk"])
        if len(refs) != 1:
            raise RuntimeError(f"chunk {key!r} has {len(refs)} staged files; expected one")  # a bug, not bad input
        ref = refs[0]
        with storage.open_arrow_input(ref.path, whole=True) as source:
            table = pa.ipc.open_file(source).read_all()
        decisions = parts.decisions_from(list(grouped["decisions"]))
        keep, copies = parts.apply_decisions(table.num_rows, decisions)
        days = parts.days_of(table)
        in_range = parts.selected(days, self._days)
        file_id = chunk_file_id(key)
        stats = {"rows_written": {}, "dates_seen": {}, "duplicates_removed": {}, "outside_selected_dates": 0}
        for day in set(days[keep].tolist()):
            stats["dates_seen"][day_to_date(day)] = True
        self._write_rows(table, keep, copies, in_range, file_id, stats)
        self._write_duplicates(table, decisions, file_id, stats)
        removed = decisions[decisions["kind"] != KEEP]
        outside = int((keep & ~in_range).sum())
        if self._days is not None and len(removed):
            outside += int((~parts.selected(removed["kept_recv"] // US_PER_DAY, self._days)).sum())
        stats["outside_selected_dates"] = outside
        if self._packages:
            yield from self._write_package_fragments(table, keep, in_range, file_id, stats)
        yield stats

    def _write_rows(self, table, keep, copies, in_range, file_id, stats):
        fmt = self._config.format
        out = self._config.output
        for stream, date, rows in parts.kept_partitions(table, keep, copies, in_range):
            path = self._workdir.path("warehouse", stream, f"dt={date}", f"part-{file_id}{EXTENSIONS[fmt]}")
            self._workdir.guard(path, write_table, path, rows, fmt, out.parquet_compression, out.avro_codec)
            written = stats["rows_written"].setdefault(stream, {})
            written[date] = written.get(date, 0) + rows.num_rows
            count(f"rows_{stream}", rows.num_rows)

    def _write_duplicates(self, table, decisions, file_id, stats):
        removed = stats["duplicates_removed"]
        for date, audit in parts.duplicate_rows(table, decisions, self._days):
            path = self._workdir.path("duplicates", f"dt={date}", f"part-{file_id}.parquet")
            self._workdir.guard(path, write_table, path, audit, "parquet", self._config.output.parquet_compression)
            kinds = audit.column("kind").to_pylist()
            sources = audit.column("event_source").to_pylist()
            names = audit.column("name").to_pylist()
            for kind, source, name in zip(kinds, sources, names):
                _bump(removed, "by_kind", kind)
                _bump(removed, "by_source", source)
                _bump(removed, "by_dt", date)
                _bump(removed, "by_name", name)
                _bump(removed.setdefault("by_source_kind", {}), source, kind)
        for kind in KIND_NAMES.values():
            count(f"duplicates_{kind}", removed.get("by_kind", {}).get(kind, 0))

    def _write_package_fragments(self, table, keep, in_range, file_id, stats):
        rows, left_out = parts.package_rows(table, keep, in_range, self._config.orgs)
        stats["package_left_out"] = left_out
        if not rows.num_rows:
            return
        path = self._workdir.scratch_path("package_fragments", f"{file_id}.arrow")
        groups = []

        def write(sink):
            with pa.ipc.new_file(sink, rows.schema, options=pa.ipc.IpcWriteOptions(compression="lz4")) as writer:
                batch = 0
                for package, day, start, stop in parts.package_groups(rows):
                    first = batch
                    for offset in range(start, stop, PACKAGE_BATCH_ROWS):
                        writer.write_table(rows.slice(offset, min(PACKAGE_BATCH_ROWS, stop - offset)))
                        batch += 1
                    groups.append((package, day_to_date(day), first, batch - first))

        self._workdir.guard(path, storage.write_arrow, path, write)
        for package, date, first, batches in groups:
            yield beam.pvalue.TaggedOutput(PACKAGE_FRAGMENTS, ((package, date), (path, first, batches)))


def _bump(counter: dict, section: str, key) -> None:
    bucket = counter.setdefault(section, {})
    bucket[key] = bucket.get(key, 0) + 1


class WriteRejectsFn(beam.DoFn):
    """(chunk key, reject records) -> `rejects/part-<chunk>.jsonl.gz` in the work folder."""

    def __init__(self, workdir: WorkDir):
        self._workdir = workdir

    def setup(self):
        self._workdir.activate()

    def process(self, element):
        key, records = element
        path = self._workdir.path("rejects", f"part-{chunk_file_id(key)}.jsonl.gz")
        self._workdir.guard(path, storage.write_bytes, path, jsonl_gz_bytes(records))
        yield {"reject_files": 1}


class WritePartitions(beam.PTransform):
    """{'chunks': ChunkRef, 'decisions': (key, bytes)} -> statistics, package fragments."""

    def __init__(self, config: Config, workdir: WorkDir, days: frozenset[int] | None, packages: bool):
        super().__init__()
        self._fn = WriteChunkFn(config, workdir, days, packages)

    def expand(self, inputs):
        chunks = inputs["chunks"] | "KeyChunks" >> beam.Map(_by_key)
        joined = {"chunk": chunks, "decisions": inputs["decisions"]} | "JoinDecisions" >> beam.CoGroupByKey()
        return joined | "WriteChunk" >> beam.ParDo(self._fn).with_outputs(PACKAGE_FRAGMENTS, main="stats")


__all__ = ["WritePartitions", "WriteRejectsFn", "PACKAGE_FRAGMENTS", "DECISION_DTYPE"]
