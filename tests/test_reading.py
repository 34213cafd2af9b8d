"""Tier 1: bytes of a file -> lines, gzip detection and integrity checks."""

from __future__ import annotations

import gzip
import io
import zlib

import pytest

from trackpipe.errors import InputError
from trackpipe.events.lines import TooLong, iter_lines

LINES = [b'{"event_type": "a", "time": "2026-11-02T00:00:00+00:00"}', b"", b"second", b"third"]


def lines_of(data: bytes, path: str = "f.log", max_line: int = 1 << 20) -> list:
    return list(iter_lines(io.BytesIO(data), path, max_line))


def test_plain_text_with_and_without_final_newline():
    text = b"\n".join(LINES)
    assert lines_of(text) == LINES
    assert lines_of(text + b"\n") == LINES
    assert lines_of(b"") == []
    assert lines_of(b"\n") == [b""]


def test_crlf_lines_keep_their_cr_for_the_parser():
    assert lines_of(b"a\r\nb\r\n") == [b"a\r", b"b\r"]


@pytest.mark.parametrize("path", ["tracking.log-20261102-1762041600.gz", "no-suffix-but-gzip-magic"])
def test_gzip_by_suffix_or_magic(path):
    data = gzip.compress(b"\n".join(LINES) + b"\n")
    assert lines_of(data, path) == LINES


def test_empty_gz_file_is_fine():
    assert lines_of(b"", "empty.log.gz") == []
    assert lines_of(gzip.compress(b""), "empty2.log.gz") == []


def test_multi_member_gzip_and_zero_padding():
    data = gzip.compress(b"a\nb\n") + gzip.compress(b"c\n") + b"\x00" * 1024
    assert lines_of(data, "x.gz") == [b"a", b"b", b"c"]


def test_large_gzip_is_read_completely():
    # Beam's compressed reads return only the first 16 MiB buffer per read(); make sure we loop.
    body = b"".join(b'{"n": %d, "pad": "%s"}\n' % (i, b"x" * 200) for i in range(120_000))
    assert len(body) > 24 * 1024 * 1024
    lines = lines_of(gzip.compress(body, 1), "big.gz")
    assert len(lines) == 120_000 and lines[-1].startswith(b'{"n": 119999')


def test_truncated_gzip_fails_naming_the_file():
    data = gzip.compress(b"".join(b"line %d %s\n" % (i, b"q" * 50) for i in range(5000)))
    got = []
    with pytest.raises(InputError, match=r"cut\.gz: truncated gzip stream"):
        for line in iter_lines(io.BytesIO(data[: len(data) // 2]), "cut.gz", 1 << 20):
            got.append(line)
    assert 0 < len(got) < 5000  # the lines before the damage were delivered first


def test_bad_crc_fails():
    data = bytearray(gzip.compress(b"hello\nworld\n"))
    data[-8] ^= 0xFF  # CRC32 in the trailer
    with pytest.raises(InputError, match="crc.gz: corrupt gzip data"):
        lines_of(bytes(data), "crc.gz")


def test_corrupt_deflate_data_fails():
    data = bytearray(gzip.compress(bytes(range(256)) * 400))
    data[200:260] = b"\xff" * 60
    with pytest.raises(InputError, match="bad.gz"):
        lines_of(bytes(data), "bad.gz")


def test_gz_suffix_on_plain_text_fails_clearly():
    with pytest.raises(InputError, match="plain.gz: not a gzip stream"):
        lines_of(b"not compressed\n", "plain.gz")


def test_garbage_after_gzip_member_fails():
    with pytest.raises(InputError, match="trail.gz"):
        lines_of(gzip.compress(b"a\n") + b"junk", "trail.gz")


def test_overlong_lines_come_as_toolong_and_reading_goes_on():
    data = b"short\n" + b"x" * 5000 + b"\nafter\n"
    out = lines_of(data, max_line=1000)
    assert out[0] == b"short" and out[2] == b"after"
    assert isinstance(out[1], TooLong) and out[1].length == 5000


def test_overlong_line_spanning_blocks(monkeypatch):
    import trackpipe.events.lines as reading

    monkeypatch.setattr(reading, "READ_BLOCK", 64)
    data = b"a\n" + b"y" * 1000 + b"\nb"
    out = list(iter_lines(io.BytesIO(data), "f", 100))
    assert out[0] == b"a" and out[2] == b"b"
    assert isinstance(out[1], TooLong) and out[1].length == 1000


def test_zlib_is_the_reference_for_what_we_decompress():
    body = b"".join(b"%d\n" % i for i in range(1000))
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    data = comp.compress(body) + comp.flush()
    assert lines_of(data, "z.gz") == body.split(b"\n")[:-1]
