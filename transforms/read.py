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
from trackpipe.events.chunks import ChunkBuilder, StagedChunk, chunk_file_id, chunk_key
from trackpipe.events.duplicates import shard_of
from trackpipe.events.lines import READ_BLOCK, decompress, is_gzip, iter_lines, iter_range_lines
from trackpipe.events.parse import LineParser
from trackpipe.events.retirement import RetiredUsers
from trackpipe.events.schema import STAGED_SCHEMA
from trackpipe.runtime import faults
from trackpipe.runtime.memory import keep_freed_memory, no_gc
from trackpipe.runtime.progress import PROGRESS_DIR, ProgressWriter
from trackpipe.storage.formats import GuardedWriter
from trackpipe.storage.workdir import WorkDir
from transforms.stats import count

# Output tags of ReadAndStage.
FINGERPRINTS = "fingerprints"
REJECTS = "rejects"
STATS = "stats"
RANGE_LINES = "range_lines"  # ((file, range start), lines read) of split files: line numbers are per range


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

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

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


class InputRange(NamedTuple):
    """A piece of reading work: the lines of `read_path` that start in [start, end) (end None:
    to the end of the file), standing for the input file `path` (what rows and rejects name)."""

    path: str
    size: int  # the input file's listed size
    read_path: str  # the file itself, or its decompressed copy in the scratch folder
    start: int = 0
    end: int | None = None
    plain: bool = False  # read_path is known to be uncompressed (ranges need it)

    @property
    def split(self) -> bool:
        return self.start > 0 or self.end is not None


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


class PlanReadsFn(beam.DoFn):
    """File -> the ranges it is read in (main output: InputRange) and, for a damaged gzip file
    that was decompressed ahead, its input error (STATS).

    One file is one piece of work unless it is big: an uncompressed file larger than
    `read.split_bytes` is read as ranges of that size by as many workers, a gzip file larger
    than an eighth of it (about as many lines) is first decompressed into the scratch folder
    (ISA-L, several times faster than parsing) and then read the same way. The ranges depend on
    the files and the config only, never on the number of workers, so the output does not."""

    GZIP_RATIO = 8

    def __init__(self, config: Config, workdir: WorkDir, skip_corrupt: bool):
        self._split = config.read.split_bytes
        self._workdir = workdir
        self._skip_corrupt = skip_corrupt

    def setup(self):
        self._workdir.activate()

    def process(self, infile: InputFile):
        whole = InputRange(infile.path, infile.size, infile.path)
        if not self._split or infile.size <= self._split // self.GZIP_RATIO:
            yield whole
            return
        try:
            with storage.open_read(infile.path) as raw:
                gzip = is_gzip(infile.path, raw.read(2))
        except (OSError, TrackpipeError):
            yield whole  # reading it will say what is wrong, as for any file
            return
        if not gzip:
            yield from self._ranges(infile, infile.path, infile.size)
            return
        copy, size = yield from self._decompress(infile)
        if copy is None:
            yield whole
        else:
            yield from self._ranges(infile, copy, size)

    def _ranges(self, infile: InputFile, read_path: str, size: int):
        if size <= self._split:
            yield InputRange(infile.path, infile.size, read_path, plain=True)
            return
        starts = range(0, size, self._split)
        for start in starts:
            end = start + self._split if start + self._split < size else None  # the last reads to the end
            yield InputRange(infile.path, infile.size, read_path, start, end, plain=True)

    def _decompress(self, infile: InputFile):
        """Decompress a gzip file into the scratch folder; return (its path, its size), or
        (None, 0) when the file cannot be read (the whole-file read then reports why). Disk
        errors writing the copy fail the run like any other write."""
        digest = chunk_file_id(chunk_key(infile.path, 0)).split("-")[0]
        copy = self._workdir.scratch_path("unzipped", f"{digest}.log")
        try:
            raw = storage.open_read(infile.path)
        except (OSError, TrackpipeError):
            return None, 0
        try:
            with raw, _GuardedSink(self._workdir, copy) as sink:
                size, _newlines = decompress(raw, infile.path, sink)
        except InputError as exc:
            partial = _size_of(copy)
            lines = _lines_in(copy, partial)
            error = f"{exc} (after line {lines})"
            if not self._skip_corrupt:
                self._workdir.fail(f"{error}; rerun with --skip-corrupt-inputs to process the other files")
            count("input_errors", 1)
            yield beam.pvalue.TaggedOutput(STATS, {"input_errors": [{"file": infile.path, "error": error, "lines_read": lines}]})
            return copy, partial
        except OSError:  # reading the source failed midway: read it whole, which says why
            return None, 0
        return copy, size


class _GuardedSink:
    """A file in the work folders whose disk errors fail the run with a clear message."""

    def __init__(self, workdir: WorkDir, path: str):
        self._workdir, self._path = workdir, path
        self._handle = workdir.guard(path, storage.open_write, path)

    def write(self, data: bytes) -> None:
        self._workdir.guard(self._path, self._handle.write, data)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._workdir.guard(self._path, self._handle.close)


def _size_of(path: str) -> int:
    try:
        return sum(size for _, size in storage.match(path))
    except (OSError, TrackpipeError):
        return 0


def _lines_in(path: str, size: int) -> int:
    """Lines of a (partial) decompressed copy: newlines, plus a last line without one."""
    if not size:
        return 0
    newlines, last = 0, b""
    with storage.open_read(path) as handle:
        while block := handle.read(READ_BLOCK):
            newlines += block.count(b"\n")
            last = block[-1:]
    return newlines + (last != b"\n")


class ReadAndStageFn(beam.DoFn):
    """Range -> staged chunks (main output: ChunkRef), fingerprint batches per shard
    (FINGERPRINTS), reject batches (REJECTS), lines per range of split files (RANGE_LINES) and
    statistics (STATS). Events of retired learners are dropped here, only counted."""

    def __init__(
        self, config: Config, workdir: WorkDir, shards: int, skip_corrupt: bool, retired: RetiredUsers | None = None, keep_raw: bool = True
    ):
        self._config = config
        self._workdir = workdir
        self._shards = shards
        self._skip_corrupt = skip_corrupt
        self._retired = retired
        self._keep_raw = keep_raw  # research packages need the raw lines; nothing else does
        self._parser = None

    def setup(self):
        self._workdir.activate()
        keep_freed_memory()
        self._parser = LineParser(self._config, self._retired)

    def _open_sink(self, key: str) -> GuardedWriter:
        """Where a chunk's batches are staged as they are built: an uncompressed Arrow file
        (written at memory speed, read back batch by batch)."""
        path = self._workdir.scratch_path("chunks", f"{chunk_file_id(key)}.arrow")
        return GuardedWriter(self._workdir, path, STAGED_SCHEMA, "arrow")

    def process(self, piece: InputRange):
        faults.pause("read")
        with no_gc():
            yield from self._read(piece)

    def _lines(self, stream, piece: InputRange):
        read = self._config.read
        if piece.split:
            end = piece.end if piece.end is not None else float("inf")
            return iter_range_lines(stream, piece.path, piece.start, end, read.max_line_bytes, read.reject_line_chars)
        return iter_lines(stream, piece.path, read.max_line_bytes, read.reject_line_chars, plain=piece.plain)

    def _read(self, piece: InputRange):
        read = self._config.read
        builder = ChunkBuilder(
            self._parser,
            piece.path,
            read.chunk_lines,
            read.chunk_bytes,
            read.reject_line_chars,
            open_sink=self._open_sink,
            start=piece.start,
            keep_raw=self._keep_raw,
        )
        lines = 0
        chunks = 0
        error = None
        stream = None
        progress = ProgressWriter.for_folder(self._workdir.path(PROGRESS_DIR))
        try:
            with storage.open_read(piece.read_path) as raw:
                stream = _CountingReader(raw)
                for line in self._lines(stream, piece):
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
            error = f"{piece.path}: the file disappeared after it was listed"
        except PermissionError:
            error = f"{piece.path}: permission denied"
        except OSError as exc:
            error = f"{piece.path}: cannot read ({exc.strerror or exc})"
        if error and not self._skip_corrupt:
            self._workdir.fail(f"{error}; rerun with --skip-corrupt-inputs to process the other files")
        if builder.pending():
            chunks += 1
            yield from self._stage(builder.build())
        first = piece.start == 0
        bytes_read = stream.take() if stream is not None and not error else 0
        progress.add(flush=True, files_done=1 if first else 0, lines=lines % PROGRESS_LINES, bytes_read=bytes_read)
        stats = {"files": {piece.path: {"lines": lines, "bytes": piece.size if first else 0, "chunks": chunks}}, "lines_read": lines}
        if error:
            stats["input_errors"] = [{"file": piece.path, "error": error, "lines_read": lines}]
            count("input_errors", 1)
        if piece.split:
            yield beam.pvalue.TaggedOutput(RANGE_LINES, ((piece.path, piece.start), lines))
        count("lines_read", lines)
        count("files_read", 1 if first else 0)
        yield beam.pvalue.TaggedOutput(STATS, stats)

    def _stage(self, chunk: StagedChunk):
        counts = chunk.counts
        stats = {
            "blank_lines": counts["blank"],
            "events_parsed": counts["events"],
            "rejected": dict(counts["rejected"]),
            "retired": counts["retired"],
        }
        count("blank_lines", counts["blank"])
        count("retired", counts["retired"])
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
    """InputFile -> {"chunks": ChunkRef, FINGERPRINTS, REJECTS, RANGE_LINES, STATS}: big files
    are planned into ranges, the ranges spread over the workers, each read, parsed and staged."""

    def __init__(
        self, config: Config, workdir: WorkDir, shards: int, skip_corrupt: bool, retired: RetiredUsers | None = None, keep_raw: bool = True
    ):
        super().__init__()
        self._plan = PlanReadsFn(config, workdir, skip_corrupt)
        self._fn = ReadAndStageFn(config, workdir, shards, skip_corrupt, retired, keep_raw)

    def expand(self, files):
        planned = files | "PlanReads" >> beam.ParDo(self._plan).with_outputs(STATS, main="ranges")
        ranges = planned.ranges | "Spread" >> beam.Reshuffle()
        read = ranges | "ReadParseStage" >> beam.ParDo(self._fn).with_outputs(FINGERPRINTS, REJECTS, STATS, RANGE_LINES, main="chunks")
        stats = (planned[STATS], read[STATS]) | "ReadStats" >> beam.Flatten()
        return {
            "chunks": read.chunks,
            FINGERPRINTS: read[FINGERPRINTS],
            REJECTS: read[REJECTS],
            RANGE_LINES: read[RANGE_LINES],
            STATS: stats,
        }
