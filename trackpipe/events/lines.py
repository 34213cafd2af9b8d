"""Bytes of one input file -> numbered lines, with gzip integrity checks. No Beam here.

Gzip is recognised by the `.gz` suffix or by the magic bytes; everything else is plain text.
Unlike Beam's text readers, a truncated or corrupt gzip stream is an error here (Beam returns
the lines before the damage and says nothing). Decompression uses ISA-L (`isal`), several times
faster than zlib on the same stream, and streams: memory is bounded by the read block and the
longest line, never by the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

from isal import isal_zlib

from trackpipe.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
# Compressed bytes per read: the decompressed block (~5x) stays small enough to be reused by
# the allocator and to stay in cache while it is split.
READ_BLOCK = 1024 * 1024


class TooLong(NamedTuple):
    """A line longer than the configured limit: only its head is kept (for the reject)."""

    head: bytes
    length: int


def is_gzip(path: str, head: bytes) -> bool:
    return path.endswith(".gz") or head[:2] == GZIP_MAGIC


def _read_blocks(stream: BinaryIO, first: bytes) -> Iterator[bytes]:
    if first:
        yield first
    while True:
        block = stream.read(READ_BLOCK)
        if not block:
            return
        yield block


def _gunzip(blocks: Iterator[bytes], path: str) -> Iterator[bytes]:
    """Decompress a (possibly multi-member) gzip stream; raise InputError on damage.

    Checked: truncation (stream ends inside a member), CRC/length mismatch, garbage after a
    member. Zero padding after the last member (left by some writers) is accepted.
    """
    decomp = isal_zlib.decompressobj(31)
    in_member = False
    padding_only = False
    for block in blocks:
        while block:
            if padding_only:
                if block.strip(b"\x00"):
                    raise InputError(f"{path}: unexpected data after the end of the gzip stream")
                break
            if not in_member:
                if block[:2] != GZIP_MAGIC[: len(block[:2])]:
                    if not block.strip(b"\x00"):
                        padding_only = True
                        break
                    raise InputError(f"{path}: not a gzip stream (bad magic bytes)")
                in_member = True
            try:
                out = decomp.decompress(block)
            except isal_zlib.error as exc:
                raise InputError(f"{path}: corrupt gzip data ({exc})") from None
            if out:
                yield out
            if decomp.eof:
                block = decomp.unused_data
                decomp = isal_zlib.decompressobj(31)
                in_member = False
            else:
                block = b""
    if in_member:
        raise InputError(f"{path}: truncated gzip stream (the file ends inside compressed data)")


def iter_lines(
    stream: BinaryIO, path: str, max_line_bytes: int, head_bytes: int = 20_000, plain: bool = False
) -> Iterator[bytes | TooLong]:
    """Yield the lines of a file (without their `\\n`), in order; line N is the N-th yielded.

    A last line without a newline is a line; a file ending in `\\n` has no empty line after it.
    Lines longer than `max_line_bytes` come as TooLong. On damage the partial last line is
    yielded first (it is input too), then InputError is raised.
    """
    first = stream.read(READ_BLOCK)
    blocks = _read_blocks(stream, first)
    data = _gunzip(blocks, path) if not plain and is_gzip(path, first) else blocks
    rest = b""
    overlong: TooLong | None = None
    try:
        for block in data:
            if overlong is not None:
                cut = block.find(b"\n")
                if cut < 0:
                    overlong = TooLong(overlong.head, overlong.length + len(block))
                    continue
                yield TooLong(overlong.head, overlong.length + cut)
                overlong = None
                block = block[cut + 1 :]
            lines = block.split(b"\n")
            if rest:
                lines[0] = rest + lines[0]  # the line the previous block ended in
            rest = lines.pop()
            for line in lines:
                if len(line) > max_line_bytes:
                    yield TooLong(line[:head_bytes], len(line))
                else:
                    yield line
            if len(rest) > max_line_bytes:
                overlong = TooLong(rest[:head_bytes], len(rest))
                rest = b""
    except InputError:
        if overlong is not None:
            yield overlong
        elif rest:
            yield rest
        raise
    if overlong is not None:
        yield overlong
    elif rest:
        yield rest


def decompress(stream: BinaryIO, path: str, sink: BinaryIO) -> tuple[int, int]:
    """Write the decompressed bytes of a gzip file to `sink`; return (bytes, newlines). The
    integrity checks of iter_lines apply: on damage, what came before it is written, then
    InputError is raised."""
    first = stream.read(READ_BLOCK)
    size = newlines = 0
    for block in _gunzip(_read_blocks(stream, first), path):
        sink.write(block)
        size += len(block)
        newlines += block.count(b"\n")
    return size, newlines


def first_line_start(stream: BinaryIO, start: int) -> int | None:
    """The offset of the first line that starts at or after `start` in an uncompressed file
    (a line starts at 0 and after every `\\n`), or None when no line starts there."""
    if start == 0:
        return 0
    stream.seek(start - 1)
    position = start - 1
    while True:
        block = stream.read(READ_BLOCK)
        if not block:
            return None
        cut = block.find(b"\n")
        if cut >= 0:
            return position + cut + 1
        position += len(block)


def iter_range_lines(stream: BinaryIO, path: str, start: int, end: int, max_line_bytes: int, head_bytes: int = 20_000):
    """The lines of an uncompressed file that START in [start, end), in order, as iter_lines
    gives them. A line that straddles `end` is read whole here; one that straddles `start`
    belongs to the range before: consecutive ranges read every line exactly once, however long
    the lines are (a line longer than a range leaves the ranges it covers empty)."""
    first = first_line_start(stream, start)
    if first is None or first >= end:
        return
    stream.seek(first)
    position = first
    for line in iter_lines(stream, path, max_line_bytes, head_bytes, plain=True):
        if position >= end:
            return
        yield line
        position += (line.length if type(line) is TooLong else len(line)) + 1
