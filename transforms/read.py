"""Reading: match the input globs, then read, parse and stage each file in bounded chunks.

This is the input edge of the pipeline. Each chunk of parsed events is staged as one Arrow IPC
file in the run's work folder, and only compact fingerprint records (~60 bytes per event, in
batches) travel on through the deduplication shuffle; the events themselves are read back once,
by the writer, after the decisions are made. Moving whole events through a shuffle is what made
Beam pipelines over tracking logs slow and memory-hungry (see docs/benchmarks.md).
"""

from __future__ import annotations

from typing import NamedTuple

import apache_beam as beam

from trackpipe import storage
from trackpipe.config import Config
from trackpipe.errors import InputError, TrackpipeError
from trackpipe.events.chunks import ChunkBuilder, StagedChunk, chunk_file_id
from trackpipe.events.duplicates import shard_of
from trackpipe.events.lines import iter_lines
from trackpipe.events.parse import LineParser
from trackpipe.events.schema import STAGED_SCHEMA
from trackpipe.runtime import faults
from trackpipe.runtime.memory import keep_freed_memory, no_gc
from trackpipe.runtime.progress import PROGRESS_DIR, ProgressWriter
from trackpipe.storage.formats import GuardedWriter
from trackpipe.storage.workdir import WorkDir
from transforms.stats import count

# Output tags of ReadAndStageFn.
FINGERPRINTS = "fingerprints"
REJECTS = "rejects"
STATS = "stats"


PROGRESS_LINES = 8192  # lines between progress updates


class _CountingReader:
    """Counts the bytes read from a stream (for progress: compressed bytes of the file)."""

    def __init__(self, raw):
        self._raw = raw
        self._pending = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._pending += len(data)
        return data

    def take(self) -> int:
        """Bytes read since the last call."""
        pending, self._pending = self._pending, 0
        return pending


class ChunkRef(NamedTuple):
    """A staged chunk: where its rows are and how many."""

    key: str
    path: str
    source_file: str
    rows: int


class InputFile(NamedTuple):
    path: str
    size: int


class MatchPatternFn(beam.DoFn):
    """Glob -> the files it matches. A glob matching nothing fails the run: a wrong path must
    not publish an empty day."""

    def __init__(self, workdir: WorkDir):
        self._workdir = workdir

    def setup(self):
        self._workdir.activate()

    def process(self, pattern: str):
        try:
            found = storage.match(pattern)
        except TrackpipeError as exc:
            self._workdir.fail(str(exc))
        if not found:
            self._workdir.fail(f"--input {pattern} matches no file")
        progress = ProgressWriter.for_folder(self._workdir.path(PROGRESS_DIR))
        progress.add(flush=True, files_total=len(found), bytes_total=sum(size for _, size in found))
        for path, size in found:
            yield InputFile(path, size)


class ListInputFiles(beam.PTransform):
    """The distinct files matched by the input globs, spread over workers."""

    def __init__(self, patterns: list[str], workdir: WorkDir):
        super().__init__()
        self._patterns = sorted(set(patterns))
        self._workdir = workdir

    def expand(self, pbegin):
        return (
            pbegin
            | "Patterns" >> beam.Create(self._patterns)
            | "Match" >> beam.ParDo(MatchPatternFn(self._workdir))
            | "Distinct" >> beam.Distinct()
        )


class ReadAndStageFn(beam.DoFn):
    """File -> staged chunks (main output: ChunkRef), fingerprint batches per shard
    (FINGERPRINTS), reject batches (REJECTS) and statistics (STATS)."""

    def __init__(self, config: Config, workdir: WorkDir, shards: int, skip_corrupt: bool):
        self._config = config
        self._workdir = workdir
        self._shards = shards
        self._skip_corrupt = skip_corrupt
        self._parser = None

    def setup(self):
        self._workdir.activate()
        keep_freed_memory()
        self._parser = LineParser(self._config)

    def _open_sink(self, key: str) -> GuardedWriter:
        """Where a chunk's batches are staged as they are built: an uncompressed Arrow file
        (written at memory speed, read back batch by batch)."""
        path = self._workdir.scratch_path("chunks", f"{chunk_file_id(key)}.arrow")
        return GuardedWriter(self._workdir, path, STAGED_SCHEMA, "arrow")

    def process(self, infile: InputFile):
        faults.pause("read")
        with no_gc():
            yield from self._read(infile)

    def _read(self, infile: InputFile):
        read = self._config.read
        builder = ChunkBuilder(
            self._parser, infile.path, read.chunk_lines, read.chunk_bytes, read.reject_line_chars, open_sink=self._open_sink
        )
        lines = 0
        chunks = 0
        error = None
        progress = ProgressWriter.for_folder(self._workdir.path(PROGRESS_DIR))
        try:
            with storage.open_read(infile.path) as raw:
                stream = _CountingReader(raw)
                for line in iter_lines(stream, infile.path, read.max_line_bytes, read.reject_line_chars):
                    lines += 1
                    builder.add(lines, line)
                    if not lines % PROGRESS_LINES:
                        progress.add(lines=PROGRESS_LINES, bytes_read=stream.take())
                    if builder.full():
                        chunks += 1
                        yield from self._stage(builder.build())
        except InputError as exc:
            error = f"{exc} (after line {lines})"
        except FileNotFoundError:
            error = f"{infile.path}: the file disappeared after it was listed"
        except PermissionError:
            error = f"{infile.path}: permission denied"
        except OSError as exc:
            error = f"{infile.path}: cannot read ({exc.strerror or exc})"
        if error and not self._skip_corrupt:
            self._workdir.fail(f"{error}; rerun with --skip-corrupt-inputs to process the other files")
        if builder.pending():
            chunks += 1
            yield from self._stage(builder.build())
        progress.add(flush=True, files_done=1, lines=lines % PROGRESS_LINES, bytes_read=stream.take() if not error else 0)
        stats = {"files": {infile.path: {"lines": lines, "bytes": infile.size, "chunks": chunks}}, "lines_read": lines}
        if error:
            stats["input_errors"] = [{"file": infile.path, "error": error, "lines_read": lines}]
            count("input_errors", 1)
        count("lines_read", lines)
        count("files_read", 1)
        yield beam.pvalue.TaggedOutput(STATS, stats)

    def _stage(self, chunk: StagedChunk):
        counts = chunk.counts
        stats = {"blank_lines": counts["blank"], "events_parsed": counts["events"], "rejected": dict(counts["rejected"])}
        count("blank_lines", counts["blank"])
        for reason, n in counts["rejected"].items():
            count(f"rejected_{reason}", n)
        yield beam.pvalue.TaggedOutput(STATS, stats)
        if chunk.rejects:
            yield beam.pvalue.TaggedOutput(REJECTS, (chunk.key, chunk.rejects))
        ProgressWriter.for_folder(self._workdir.path(PROGRESS_DIR)).add(events=chunk.rows, chunks_staged=1 if chunk.rows else 0)
        if not chunk.rows:
            return
        yield ChunkRef(chunk.key, chunk.path, chunk.source_file, chunk.rows)
        fps = chunk.fingerprints
        shards = shard_of(fps, self._shards)
        for shard in sorted(set(shards.tolist())):
            part = fps[shards == shard]
            yield beam.pvalue.TaggedOutput(FINGERPRINTS, (shard, (chunk.key, part.tobytes())))


class ReadAndStage(beam.PTransform):
    """InputFile -> tagged outputs: main (ChunkRef), FINGERPRINTS, REJECTS, STATS."""

    def __init__(self, config: Config, workdir: WorkDir, shards: int, skip_corrupt: bool):
        super().__init__()
        self._fn = ReadAndStageFn(config, workdir, shards, skip_corrupt)

    def expand(self, files):
        return files | "ReadParseStage" >> beam.ParDo(self._fn).with_outputs(FINGERPRINTS, REJECTS, STATS, main="chunks")
