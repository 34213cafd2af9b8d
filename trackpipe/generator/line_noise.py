"""Line-level noise that trackpipe must see through, on lines that still count: the prefixes
other loggers put before the JSON (Tutor's Python logging header, docker compose's service
column, rsyslog's date and host), CRLF endings, runs of NUL bytes (one left at a file's start
when the writer kept its offset after copytruncate), and a missing newline after the last line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trackpipe.generator.bad_lines import SCALARS
from trackpipe.generator.event_families import S_TASK

if TYPE_CHECKING:
    from trackpipe.generator.event_templates.event_parts import RenderedEvent
    from trackpipe.generator.generate import CorpusGenerator

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class LineNoise:
    """Dresses event lines, and a file's lines, the way production writers do."""

    def __init__(self, gen: CorpusGenerator):
        self.rnd, self.ri, self.clock = gen.rnd, gen.ri, gen.clock

    def prefix(self, arrival: int, o: RenderedEvent, s: int) -> str:
        """What another logger writes before the JSON of an event line (mostly nothing)."""
        p = self.rnd.random()
        if p >= 0.045:
            return ""
        day, h, m, sec, f = self.clock.hms(arrival)
        if p < 0.02:  # Tutor: Python logging header
            return (
                f"{day} {h:02d}:{m:02d}:{sec:02d},{f // 1000:03d} INFO {self.ri(7, 60)} [tracking] "
                f"[user {o.uid or 'None'}] [ip {o.ip or 'None'}] logger.py:41 - "
            )
        if p < 0.032:  # docker compose
            return "lms-worker-1  | " if s == S_TASK else f"lms-{1 + self.ri(2)}  | "
        y, mo, dd = day.split("-")
        return f"{MONTHS[int(mo) - 1]} {int(dd):2d} {h:02d}:{m:02d}:{sec:02d} ip-10-3-{self.ri(256)}-{self.ri(256)} tracking: "

    def accidents(self, lines: list[str]) -> bool:
        """CRLF endings and NUL runs put into a file's lines (in place); whether the file ends
        with a newline."""
        rnd = self.rnd
        never = SCALARS  # the not_an_object bad lines are left as they are
        for i in range(len(lines)):
            p = rnd.random()
            if p < 0.0005 and lines[i] not in never:
                lines[i] += "\r"
            elif p < 0.0007 and lines[i] not in never:
                lines[i] = "\x00" * self.ri(1, 40) + lines[i]
        if lines and rnd.random() < 0.3 and lines[0] not in never:  # writer kept its offset after copytruncate
            lines[0] = "\x00" * self.ri(200, 4000) + lines[0]
        return not lines or rnd.random() < 0.65 or lines[-1] == ""
