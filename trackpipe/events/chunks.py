"""Parsed lines -> one staged chunk: an Arrow table, fingerprint records and rejects. No Beam here.

A chunk is a run of consecutive lines of one file (at most `read.chunk_lines` events or
`read.chunk_bytes` of raw JSON), so memory stays bounded whatever the file size. Its key sorts
like (file path, chunk number): `decide` relies on that to break ties by file and line.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from trackpipe.events.duplicates import FP_DTYPE
from trackpipe.events.lines import TooLong
from trackpipe.events.parse import RETIRED, Event, LineParser, Reject
from trackpipe.events.schema import STAGED_SCHEMA

_MASK64 = (1 << 64) - 1


def chunk_key(path: str, index: int, start: int = 0) -> str:
    """Sorts like (path, start of the range read, chunk index), i.e. like the chunks' lines in
    the file; safe as a file name. The path digest keeps keys short and distinct; the path
    itself orders them."""
    digest = hashlib.sha1(path.encode("utf-8")).hexdigest()[:16]
    return f"{path}\x00{start:015d}\x00{index:06d}\x00{digest}"


def chunk_range(key: str) -> tuple[str, int]:
    """(file, start of the range) a chunk was read from."""
    path, start, _index, _digest = key.split("\x00")
    return path, int(start)


def chunk_file_id(key: str) -> str:
    """A short, deterministic file-name-safe id for a chunk key: `<file digest>-<chunk>`, or
    `<file digest>-<range start>-<chunk>` for a range of a split file."""
    _path, start, index, digest = key.split("\x00")
    return f"{digest}-{index}" if int(start) == 0 else f"{digest}-{int(start)}-{index}"


@dataclass
class StagedChunk:
    key: str
    source_file: str
    rows: int
    fingerprints: np.ndarray
    rejects: list[dict]
    counts: dict = field(default_factory=dict)
    table: pa.Table | None = None  # the rows, when no sink took them (tests, profiling)
    path: str | None = None  # where the sink staged them


def binary_array(values, type: pa.DataType = pa.binary()) -> pa.Array:
    """A binary (or, for UTF-8 bytes, string) Arrow array from bytes objects and None: one join
    and one offsets array, several times faster than pa.array() on long values."""
    n = len(values)
    missing = None
    if None in values:
        missing = np.fromiter((v is None for v in values), dtype=bool, count=n)
        values = [b"" if v is None else v for v in values]
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = b"".join(values)
    validity = None if missing is None else pa.py_buffer(np.packbits(~missing, bitorder="little"))
    if offsets[-1] < 2**31:
        return pa.Array.from_buffers(type, n, [validity, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)])
    large = pa.large_binary() if type == pa.binary() else pa.large_string()
    return pa.Array.from_buffers(large, n, [validity, pa.py_buffer(offsets), pa.py_buffer(data)]).cast(type)


def hex_ids(hi: np.ndarray, lo: np.ndarray) -> pa.Array:
    """128-bit fingerprints (as high and low halves) -> 32-character lower-case hex strings,
    built as one buffer: `format(v, "032x")` per row cost more than the rest of the column."""
    n = len(hi)
    raw = np.empty((n, 2), dtype=">u8")
    raw[:, 0] = hi
    raw[:, 1] = lo
    data = raw.tobytes().hex().encode("ascii")
    offsets = np.arange(0, 32 * (n + 1), 32, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


class ChunkBuilder:
    """Collects the lines of one file into chunks.

    Parsed events are turned into Arrow record batches every BATCH_ROWS events, so the Python
    objects of a chunk never pile up (they take several times the memory of the Arrow data),
    and the memory they used is reused for the next batch instead of being returned to the OS
    and faulted in again.
    """

    BATCH_ROWS = 16_384

    def __init__(
        self,
        parser: LineParser,
        source_file: str,
        chunk_lines: int,
        chunk_bytes: int,
        reject_chars: int,
        open_sink=None,
        start: int = 0,
        keep_raw: bool = True,
    ):
        """`open_sink(chunk key)`, when given, returns a writer (`.path`, `.write(table)`,
        `.close()`) that receives each record batch as soon as it is built: the chunk is
        staged as it grows and only its fingerprints stay in memory."""
        self._open_sink = open_sink
        self._sink = None
        self._parser = parser
        self._source = source_file
        self._start = start  # the byte offset of the range of the file these lines come from
        # The raw lines are staged only for research packages; without packages the column stays
        # empty, which halves what a chunk writes to and reads from the scratch folder.
        self._keep_raw = keep_raw
        self._max_lines = chunk_lines
        self._max_bytes = chunk_bytes
        self._reject_chars = reject_chars
        self._index = 0
        self._reset()

    def _reset(self) -> None:
        self._events: list[Event] = []
        self._numbers: list[int] = []
        self._batches: list[pa.RecordBatch] = []
        self._fingerprints: list[np.ndarray] = []
        self._rows = 0
        self._rejects: list[dict] = []
        self._reject_bytes = 0
        self._blank = 0
        self._retired = 0
        self._lines = 0
        self._bytes = 0

    def add(self, number: int, line) -> None:
        """Parse and file one line (`bytes`, or TooLong)."""
        self._lines += 1
        if type(line) is TooLong:
            self._reject(number, "line_too_long", f"line of {line.length} bytes exceeds read.max_line_bytes", line.head)
            return
        result = self._parser.parse(line)
        if result is None:
            self._blank += 1
        elif result is RETIRED:
            self._retired += 1
        elif type(result) is Reject:
            self._reject(number, result.reason, result.detail, line)
        else:
            self._events.append(result)
            self._numbers.append(number)
            self._bytes += len(result.raw)
            if len(self._events) >= self.BATCH_ROWS:
                self._seal_batch()

    def _reject(self, number: int, reason: str, detail: str, line: bytes) -> None:
        text = line[: self._reject_chars].decode("utf-8", "replace")
        self._reject_bytes += len(text)
        self._rejects.append(
            {
                "reason": reason,
                "detail": detail,
                "source": self._source,
                "line_number": number,
                "line": text,
                "line_truncated": len(line) > self._reject_chars,
            }
        )

    def full(self) -> bool:
        return (
            self._rows + len(self._events) >= self._max_lines
            or self._bytes >= self._max_bytes
            or len(self._rejects) >= self._max_lines
            or self._reject_bytes >= self._max_bytes
        )

    def pending(self) -> bool:
        return self._lines > 0

    def _seal_batch(self) -> None:
        """Turn the pending events into a record batch and fingerprint records."""
        events, n = self._events, len(self._events)
        if not n:
            return
        by_name = dict(zip(Event._fields, zip(*events)))
        arrays = []
        fps = np.empty(n, FP_DTYPE)
        identity = by_name["identity"]
        exact = by_name["exact"]
        fps["id_hi"] = [v >> 64 for v in identity]
        fps["id_lo"] = [v & _MASK64 for v in identity]
        fps["ex_hi"] = [v >> 64 for v in exact]
        fps["ex_lo"] = [v & _MASK64 for v in exact]
        for f in STAGED_SCHEMA:
            if f.name == "event_id":
                arrays.append(hex_ids(fps["ex_hi"], fps["ex_lo"]))
            elif f.name == "source_file":
                arrays.append(pa.repeat(pa.scalar(self._source, f.type), n))
            elif f.name == "raw" and not self._keep_raw:
                arrays.append(pa.Array.from_buffers(f.type, n, [None, pa.py_buffer(np.zeros(n + 1, np.int32)), pa.py_buffer(b"")]))
            elif f.name in ("raw", "event", "context"):  # bytes: raw as it came, JSON text as UTF-8
                arrays.append(binary_array(by_name[f.name], f.type))
            elif f.name == "line_number":
                arrays.append(pa.array(self._numbers, f.type))
            else:
                arrays.append(pa.array(by_name[f.name], f.type))
        batch = pa.RecordBatch.from_arrays(arrays, schema=STAGED_SCHEMA)
        if self._open_sink is None:
            self._batches.append(batch)
        else:
            if self._sink is None:
                self._sink = self._open_sink(chunk_key(self._source, self._index, self._start))
            self._sink.write(pa.Table.from_batches([batch]))
        fps["recv"] = by_name["received_at"]
        fps["time"] = by_name["time"]
        fps["tie"] = by_name["tiebreak"]
        fps["row"] = np.arange(self._rows, self._rows + n, dtype=np.int32)
        fps["client"] = by_name["client"]
        fps["sess"] = by_name["session_key"]
        self._fingerprints.append(fps)
        self._rows += n
        self._events = []
        self._numbers = []

    def build(self) -> StagedChunk:
        """The chunk of the lines added since the last build."""
        self._seal_batch()
        table, path = None, None
        if self._open_sink is None:
            table = pa.Table.from_batches(self._batches, schema=STAGED_SCHEMA)
        elif self._sink is not None:
            self._sink.close()
            path = self._sink.path
            self._sink = None
        fps = np.concatenate(self._fingerprints) if self._fingerprints else np.empty(0, FP_DTYPE)
        reasons: dict[str, int] = {}
        for rej in self._rejects:
            reasons[rej["reason"]] = reasons.get(rej["reason"], 0) + 1
        chunk = StagedChunk(
            key=chunk_key(self._source, self._index, self._start),
            source_file=self._source,
            rows=self._rows,
            fingerprints=fps,
            rejects=self._rejects,
            counts={"lines": self._lines, "blank": self._blank, "events": self._rows, "rejected": reasons, "retired": self._retired},
            table=table,
            path=path,
        )
        self._index += 1
        self._reset()
        return chunk
