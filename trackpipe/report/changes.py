"""Comparing two runs on the page: which day of the other run each day is set against, and the
changes over 20% that the charts flag, collected for the summary on top of the page."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from trackpipe.report import data as rd
from trackpipe.report.formatting import DASH, fmt_change, fmt_int

SUMMARY_ITEMS = 6  # flagged changes listed per chart at the top; the charts show all


class Flag(NamedTuple):
    """A change over 20%: where it is drawn (section anchor and chart) and what changed."""

    anchor: str
    chart: str
    label: str
    change: rd.Change
    fmt: Callable[[float], str]


@dataclass
class Compare:
    other: rd.RunData
    day_map: dict[str, str | None]
    how: str  # "date" | "position"
    big: list[Flag] = field(default_factory=list)

    @classmethod
    def of(cls, run: rd.RunData, other: rd.RunData | None) -> Compare | None:
        if other is None:
            return None
        day_map, how = rd.align_dates(run.dates, other.dates)
        return cls(other, day_map, how)

    def track(self, anchor: str, chart: str, label: str, ch: rd.Change, fmt: Callable = fmt_int) -> rd.Change:
        if ch.big:
            self.big.append(Flag(anchor, chart, label, ch, fmt))
        return ch

    def track_rows(self, anchor: str, chart: str, rows: Iterable, fmt: Callable = fmt_int) -> None:
        """Register the flagged rows of a laid-out chart (rows with .name and .change)."""
        for row in rows:
            if row.change is not None:
                self.track(anchor, chart, row.name, row.change, fmt)

    def track_hour_ranges(self, hours: list[str], prevs: dict[str, rd.Change]) -> None:
        """List flagged hours as ranges of consecutive hours going the same way (a lost log file
        shows as one line, not 24)."""
        run: list[str] = []

        def flush() -> None:
            if run:
                value = sum(prevs[h].value for h in run)
                prev = sum(prevs[h].prev for h in run)
                label = run[0] if len(run) == 1 else f"{run[0]} {DASH} {run[-1][11:]} ({len(run)} hours)"
                ch = rd.Change(value, prev, value - prev, (value - prev) / prev if prev else None, True)
                self.big.append(Flag("hourly", "Rows per hour", label, ch, fmt_int))
                run.clear()

        for h in hours:
            ch = prevs.get(h)
            if ch is None or not ch.big:
                flush()
                continue
            if run and ((prevs[run[-1]].diff > 0) != (ch.diff > 0) or run[-1][:10] != h[:10]):
                flush()
            run.append(h)
        flush()

    def summary(self) -> list[dict]:
        """The flagged changes grouped by chart, in page order, each group cut to SUMMARY_ITEMS."""
        groups: dict[tuple[str, str], list[Flag]] = {}
        for flag in self.big:
            groups.setdefault((flag.anchor, flag.chart), []).append(flag)
        return [
            {
                "anchor": anchor,
                "chart": chart,
                "count": len(flags),
                "more": max(len(flags) - SUMMARY_ITEMS, 0),
                "entries": [
                    {
                        "label": f.label,
                        "value": f.fmt(f.change.value),
                        "prev": f.fmt(f.change.prev),
                        "change": fmt_change(f.change, f.fmt),
                    }
                    for f in flags[:SUMMARY_ITEMS]
                ],
            }
            for (anchor, chart), flags in groups.items()
        ]
