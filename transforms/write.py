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
from trackpipe.events import partitions as parts
from trackpipe.events.chunks import chunk_file_id, chunk_range
from trackpipe.events.duplicates import KEEP, KIND_NAMES
from trackpipe.events.layout import DUPLICATES_DIR, REJECTS_DIR, WAREHOUSE_DIR, part_file, partition_dir, rejects_file
from trackpipe.events.partitions import PACKAGE_SCHEMA
from trackpipe.events.schema import DUPLICATES_SCHEMA, OUTPUT_SCHEMA
from trackpipe.events.times import US_PER_DAY, day_to_date
from trackpipe.runtime.memory import keep_freed_memory
from trackpipe.runtime.progress import PROGRESS_DIR, ProgressWriter
from trackpipe.storage.formats import GuardedWriter, jsonl_gz_bytes
from trackpipe.storage.workdir import WorkDir
from transforms.stats import count

# Output tags of WriteChunkFn.
PACKAGE_FRAGMENTS = "package_fragments"
PACKAGE_BATCH_ROWS = 8192
NAME_CHARS = 200  # event names counted in the manifest are cut to this length


def _by_key(ref):
    return ref.key, ref


class WriteChunkFn(beam.DoFn):
    """(chunk key, {chunk: [ChunkRef], decisions: [bytes]}) -> statistics (main output) and
    package fragments (PACKAGE_FRAGMENTS: ((package, date), (path, first batch, batches, rows))).

    The chunk is read back one record batch at a time and every output streams into its own
    file (one per partition, audit day and chunk), so memory holds one batch, not the chunk."""

    def __init__(self, config: Config, workdir: WorkDir, days: frozenset[int] | None, packages: bool, cutoffs: parts.Cutoffs):
        self._config = config
        self._workdir = workdir
        self._days = days
        self._packages = packages
        self._cutoffs = cutoffs

    def setup(self):
        self._workdir.activate()
        keep_freed_memory()

    def process(self, element, range_lines=None):
        key, grouped = element
        lines_before = line_offset(key, range_lines)
        refs = list(grouped["chunk"])
        if len(refs) != 1:
            raise RuntimeError(f"chunk {key!r} has {len(refs)} staged files; expected one")  # a bug, not bad input
        ref = refs[0]
        decisions = parts.decisions_from(list(grouped["decisions"]))
        keep, copies = parts.apply_decisions(ref.rows, decisions)
        out = _ChunkOutputs(self._config, self._workdir, chunk_file_id(key))
        left_out: dict[str, int] = {}
        left_out_examples: dict[str, list[str]] = {}
        by_source: dict[str, int] = {}
        dates_seen: set[int] = set()
        outside = expired = 0
        cutoffs = self._cutoffs
        try:
            with storage.open_arrow_input(ref.path, stream=True) as source:
                reader = pa.ipc.open_file(source)
                offset = 0
                for index in range(reader.num_record_batches):
                    batch = pa.Table.from_batches([reader.get_batch(index)])
                    rows = slice(offset, offset + batch.num_rows)
                    days = parts.days_of(batch)
                    in_range = parts.selected(days, self._days)
                    fresh = parts.since(days, cutoffs.warehouse)
                    kept = keep[rows]
                    dates_seen.update(days[kept & fresh].tolist())
                    outside += int((kept & ~in_range).sum())
                    expired += int(copies[rows][kept & in_range & ~fresh].sum())  # the rows and the copies they stand for
                    in_range &= fresh
                    for stream, date, part in parts.kept_partitions(batch, kept, copies[rows], in_range):
                        out.write(("warehouse", stream, date), part)
                        for source, n in parts.value_counts(part, "event_source"):
                            by_source[source] = by_source.get(source, 0) + n
                    for date, audit in parts.duplicate_rows(
                        batch, parts.decisions_in(decisions, offset, batch.num_rows), self._days, lines_before, cutoffs.duplicates
                    ):
                        out.write(("duplicates", date), audit)
                    if self._packages:
                        packaged = in_range & parts.since(days, cutoffs.packages)
                        if cutoffs.packages is not None:
                            research = parts.research_mask(batch)
                            left_out["expired"] = left_out.get("expired", 0) + int((kept & in_range & ~packaged & research).sum())
                        package_rows, dropped, examples = parts.package_rows(batch, kept, packaged, self._config.orgs)
                        for reason, n in dropped.items():
                            left_out[reason] = left_out.get(reason, 0) + n
                        for reason, values in examples.items():
                            left_out_examples[reason] = sorted(set(left_out_examples.get(reason, [])) | set(values))[: parts.MAX_EXAMPLES]
                        for package, day, start, stop in parts.package_groups(package_rows):
                            out.write(("package", package, day_to_date(day)), package_rows.slice(start, stop - start))
                    offset += batch.num_rows
        finally:
            out.close()
        removed = decisions[decisions["kind"] != KEEP]
        if len(removed):
            kept_days = removed["kept_recv"] // US_PER_DAY
            chosen = parts.selected(kept_days, self._days)
            outside += int((~chosen).sum())
            # copies of expired rows are counted with their rows above; the audit's own retention:
            expired += int((chosen & parts.since(kept_days, cutoffs.warehouse) & ~parts.since(kept_days, cutoffs.duplicates)).sum())
        ProgressWriter.for_folder(self._workdir.path(PROGRESS_DIR)).add(flush=True, chunks_written=1)
        stats = {
            "rows_written": {},
            "dates_seen": {day_to_date(d): True for d in dates_seen},
            "duplicates_removed": out.duplicate_stats(),
            "outside_selected_dates": outside,
            "expired": expired,
            "rows_by_source": by_source,
        }
        for (_kind, stream, date), writer in out.tables("warehouse"):
            stats["rows_written"].setdefault(stream, {})[date] = writer.rows
            count(f"rows_{stream}", writer.rows)
        for kind in KIND_NAMES.values():
            count(f"duplicates_{kind}", stats["duplicates_removed"].get("by_kind", {}).get(kind, 0))
        if self._packages:
            stats["package_left_out"] = left_out
            if left_out_examples:
                stats["package_left_out_examples"] = left_out_examples
            for key, fragment in out.fragments():
                yield beam.pvalue.TaggedOutput(PACKAGE_FRAGMENTS, (key, fragment))
        yield stats


class _ChunkOutputs:
    """The files one chunk writes, opened on first use: a writer per warehouse partition and
    per duplicates day, and one Arrow file of package rows whose batches are grouped by
    (package, day)."""

    def __init__(self, config: Config, workdir: WorkDir, file_id: str):
        self._config = config
        self._workdir = workdir
        self._file_id = file_id
        self._writers: dict[tuple, object] = {}
        self._fragments: dict[tuple[str, str], list[int]] = {}
        self._dup_stats: dict = {}

    def write(self, target: tuple, table: pa.Table) -> None:
        kind = target[0]
        if kind == "package":
            writer = self._writer(
                ("package",), self._workdir.scratch_path("package_fragments", f"{self._file_id}.arrow"), PACKAGE_SCHEMA, "arrow"
            )
            for start in range(0, table.num_rows, PACKAGE_BATCH_ROWS):
                piece = table.slice(start, PACKAGE_BATCH_ROWS)
                self._fragments.setdefault(target[1:], []).append((writer.batches, piece.num_rows))
                writer.write(piece)
            return
        if kind == "warehouse":
            _, stream, date = target
            fmt = self._config.format
            path = self._workdir.path(WAREHOUSE_DIR, stream, partition_dir(date), part_file(self._file_id, fmt))
            self._writer(target, path, OUTPUT_SCHEMA, fmt).write(table)
            return
        _, date = target
        path = self._workdir.path(DUPLICATES_DIR, partition_dir(date), part_file(self._file_id, "parquet"))
        self._writer(target, path, DUPLICATES_SCHEMA, "parquet").write(table)
        removed = self._dup_stats
        for kind_name, source, name in zip(
            table.column("kind").to_pylist(), table.column("event_source").to_pylist(), table.column("name").to_pylist()
        ):
            _bump(removed, "by_kind", kind_name)
            _bump(removed, "by_source", source)
            _bump(removed, "by_dt", date)
            _bump(removed, "by_name", name[:NAME_CHARS])  # learner-controlled: bounded in the manifest
            _bump(removed.setdefault("by_source_kind", {}), source, kind_name)

    def _writer(self, target: tuple, path: str, schema, fmt: str):
        writer = self._writers.get(target)
        if writer is None:
            output = self._config.output
            writer = self._writers[target] = GuardedWriter(
                self._workdir, path, schema, fmt, parquet_compression=output.parquet_compression, avro_codec=output.avro_codec
            )
        return writer

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()

    def tables(self, kind: str):
        return [(target, writer) for target, writer in sorted(self._writers.items()) if target[0] == kind]

    def duplicate_stats(self) -> dict:
        return self._dup_stats

    def fragments(self):
        """((package, date), (path, first batch, number of batches, rows)) per group, in order. A group's
        batches are consecutive: rows arrive sorted by (package, day) within each input batch,
        and each input batch's groups are written before the next batch's."""
        if ("package",) not in self._writers:
            return []
        path = self._writers[("package",)].path
        out = []
        for (package, date), batches in sorted(self._fragments.items()):
            # a group recurs in several input batches: report each run of consecutive batches
            runs = []
            for index, rows in batches:
                if runs and runs[-1][0] + runs[-1][1] == index:
                    runs[-1][1] += 1
                    runs[-1][2] += rows
                else:
                    runs.append([index, 1, rows])
            out.extend(((package, date), (path, first, n, rows)) for first, n, rows in runs)
        return out


def _bump(counter: dict, section: str, key) -> None:
    bucket = counter.setdefault(section, {})
    bucket[key] = bucket.get(key, 0) + 1


def line_offset(key: str, range_lines: dict | None) -> int:
    """Lines of a chunk's file before the range the chunk was read from (0 for a whole file):
    the sum of the lines of the file's earlier ranges. Chunks of a split file number their
    lines from their range's first line; the outputs that show line numbers add this."""
    path, start = chunk_range(key)
    if not start or not range_lines:
        return 0
    return sum(n for (p, s), n in range_lines.items() if p == path and s < start)


class WriteRejectsFn(beam.DoFn):
    """(chunk key, reject records) -> `rejects/part-<chunk>.jsonl.gz` in the work folder."""

    def __init__(self, workdir: WorkDir):
        self._workdir = workdir

    def setup(self):
        self._workdir.activate()

    def process(self, element, range_lines=None):
        key, records = element
        offset = line_offset(key, range_lines)
        if offset:
            records = [{**r, "line_number": r["line_number"] + offset} for r in records]
        path = self._workdir.path(REJECTS_DIR, rejects_file(chunk_file_id(key)))
        self._workdir.guard(path, storage.write_bytes, path, jsonl_gz_bytes(records))
        yield {"reject_files": 1}


class WritePartitions(beam.PTransform):
    """{'chunks': ChunkRef, 'decisions': (key, bytes), 'range_lines': ((file, start), lines)}
    -> statistics, package fragments."""

    def __init__(self, config: Config, workdir: WorkDir, days: frozenset[int] | None, packages: bool, cutoffs: parts.Cutoffs):
        super().__init__()
        self._fn = WriteChunkFn(config, workdir, days, packages, cutoffs)

    def expand(self, inputs):
        chunks = inputs["chunks"] | "KeyChunks" >> beam.Map(_by_key)
        joined = {"chunk": chunks, "decisions": inputs["decisions"]} | "JoinDecisions" >> beam.CoGroupByKey()
        range_lines = beam.pvalue.AsDict(inputs["range_lines"])
        return joined | "WriteChunk" >> beam.ParDo(self._fn, range_lines=range_lines).with_outputs(PACKAGE_FRAGMENTS, main="stats")
