"""Property-based tests: whatever bytes arrive, the parser never raises and every line ends in
exactly one place (blank, rejected, event); staging those results into Arrow never fails."""

from __future__ import annotations

import io
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trackpipe.config import Config
from trackpipe.events.chunks import ChunkBuilder
from trackpipe.events.lines import iter_lines
from trackpipe.events.parse import REJECT_REASONS, Event, LineParser, Reject

PARSER = LineParser(Config())
REAL = Path(__file__).parent / "fixtures" / "real-events"
SAMPLES = [
    line
    for path in sorted((REAL / "edx-analytics-pipeline").glob("*.log"))[:6]
    + [REAL / "event-routing-backends" / "tracking-log" / "tracking.log"]
    for line in path.read_bytes().split(b"\n")
    if line.strip()
][:400]

ODD_TEXT = st.text(alphabet=st.characters(blacklist_categories=(), min_codepoint=0, max_codepoint=0x10FFFF), max_size=200)


def _classify(line: bytes) -> str:
    result = PARSER.parse(line)
    if result is None:
        return "blank"
    if isinstance(result, Reject):
        assert result.reason in REJECT_REASONS and result.detail
        return "rejected"
    assert isinstance(result, Event)
    assert result.raw.startswith(b"{") and result.raw.endswith(b"}")
    assert len(result.event_id) == 32
    return "event"


@st.composite
def mutated_real_event(draw):
    line = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "nul"]))
        if not line:
            break
        pos = draw(st.integers(0, len(line) - 1))
        if op == "flip":
            line[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            line[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del line[pos : pos + draw(st.integers(1, 20))]
        elif op == "truncate":
            del line[pos:]
        else:
            line[pos:pos] = b"\x00" * draw(st.integers(1, 5))
    return bytes(line).replace(b"\n", b"")


def _json_with(value) -> bytes:
    return json.dumps({"event_type": "x", "time": "2026-11-02T00:00:00+00:00", "username": value, "event": {"v": value}}).encode()


LINES = st.one_of(
    st.binary(max_size=300).map(lambda b: b.replace(b"\n", b"")),
    mutated_real_event(),
    ODD_TEXT.map(lambda t: t.encode("utf-8", "surrogatepass").replace(b"\n", b"")),
    ODD_TEXT.map(_json_with),
    ODD_TEXT.map(
        lambda t: (
            ('{"event_type": "x", "time": "2026-11-02T00:00:00Z", "username": "' + t + '"}')
            .encode("utf-8", "surrogatepass")
            .replace(b"\n", b"")
        )
    ),
    st.integers(0, 3).map(lambda k: b'{"event_type": "x", "time": "2026-11-02T00:00:00Z", "event": "' + b"y" * (10**k * 5000) + b'"}'),
    st.integers(1, 400).map(lambda d: b'{"event_type": "x", "time": "2026-11-02T00:00:00Z", "e": ' + b"[" * d + b"]" * d + b"}"),
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(LINES)
def test_parser_never_raises_and_classifies_every_line(line):
    assert _classify(line) in ("blank", "rejected", "event")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(LINES, max_size=40))
def test_every_line_of_a_file_ends_in_exactly_one_place(lines):
    data = b"\n".join(lines)
    builder = ChunkBuilder(PARSER, "fuzz.log", 16, 1 << 20, 500)
    chunks = []
    count = 0
    for number, line in enumerate(iter_lines(io.BytesIO(data), "fuzz.log", 1 << 20), 1):
        count = number
        builder.add(number, line)
        if builder.full():
            chunks.append(builder.build())
    if builder.pending():
        chunks.append(builder.build())
    # A final "\n" ends the last line; it does not start an empty one.
    physical = len(data.split(b"\n")) - data.endswith(b"\n") if data else 0
    assert count == physical
    blank = sum(c.counts["blank"] for c in chunks)
    rejected = sum(sum(c.counts["rejected"].values()) for c in chunks)
    events = sum(c.table.num_rows for c in chunks)
    assert blank + rejected + events == physical
    numbers = sorted(
        [r["line_number"] for c in chunks for r in c.rejects] + [n for c in chunks for n in c.table.column("line_number").to_pylist()]
    )
    assert len(numbers) == len(set(numbers)) == rejected + events  # no line in two places
