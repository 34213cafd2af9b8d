"""Chart geometry for the report: palette, axis maxima, and where every bar, label and tick goes.

Everything here is numbers and plain text (no markup): each layout returns a small object that
templates/charts.html.j2 draws as inline SVG, escaping every text. A layout also works out each
row's change against the other run (rd.Change), since a big change is drawn highlighted; the
caller registers the flagged ones for the summary on top of the page (trackpipe.report.changes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from trackpipe.report import data as rd
from trackpipe.report.formatting import DOT, cut, fmt_change, fmt_int, share

# One palette for the whole page: the same thing has the same colour in every chart.
SOURCE_COLORS = {"server": "#4e79a7", "browser": "#f28e2b", "mobile": "#76b7b2", "task": "#b07aa1"}
EXTRA_COLORS = ["#9c755f", "#edc948", "#ff9da7", "#bab0ac", "#59a14f", "#e15759"]
OUTCOME_COLORS = {
    "lines_read": "#5b6770",
    "rows_written": "#59a14f",
    "duplicates_removed": "#e0a800",
    "rejected": "#e15759",
    "blank_lines": "#a5acaf",
    "outside_selected_dates": "#9c755f",
    "retired": "#b07aa1",
    "expired": "#bab0ac",
    "forgotten": "#76b7b2",
}
KIND_COLORS = {"exact": "#e0a800", "client_resend": "#f6d365"}
STREAM_COLORS = {"research": "#59a14f", "internal_bi": "#8cd17d"}
PACKAGE_COLOR = "#4e79a7"
PREV_COLOR = "#9aa3ad"
BIG_BACKGROUND = "#fdecea"  # behind a row whose change is flagged

FULL = 1160  # SVG width of a full-width chart (px at a 1280px-wide window)
HALF = 560


def color(key: str, palette: dict[str, str], index: int) -> str:
    """The palette's colour for `key`, else the index-th of the extra colours."""
    return palette.get(key) or EXTRA_COLORS[index % len(EXTRA_COLORS)]


def nice_max(value: float) -> tuple[float, float]:
    """An axis maximum >= value and its tick step (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0, 1.0
    raw = value / 5
    power = 10 ** len(str(int(raw))) / 10 if raw >= 1 else 1
    for m in (1, 2, 2.5, 5, 10):
        step = m * power
        if step * 5 >= value:
            break
    top = step * -(-value // step)
    return top, step


class Box(NamedTuple):
    """A rectangle in SVG user units."""

    x: float
    y: float
    w: float
    h: float


class Point(NamedTuple):
    x: float
    y: float


# --- horizontal bars ---------------------------------------------------------------------------


@dataclass
class Bar:
    key: str
    label: str
    value: float
    color: str = "#4e79a7"
    segments: list[tuple[str, float, str]] | None = None  # (name, value, colour), stacked
    prev: float | None = None
    compared: bool = False
    sub: str = ""  # text after the value
    title: str = ""


@dataclass
class Segment:
    box: Box
    name: str
    value: int
    color: str
    title: str


@dataclass(kw_only=True)
class Flagged:
    """Something drawn with its change against the other run (None: no comparison)."""

    change: rd.Change | None

    @property
    def big(self) -> bool:
        """Drawn highlighted: the change is over 20% (rd.change)."""
        return self.change is not None and self.change.big


@dataclass(kw_only=True)
class Row(Flagged):
    """A row of a bar chart or a step of the waterfall: label, bar, value, and the change."""

    key: str
    value: int
    name: str  # the row's label in full, for the change summary
    label: str  # as drawn
    band: Box  # the highlight behind a flagged row
    bar: Box
    color: str
    text_y: float  # baseline of the label and value
    value_x: float
    value_text: str
    change_text: str = ""
    was_text: str = ""  # the other run's value
    was_y: float = 0.0

    def describe_change(self, fmt: Callable[[float], str], was_y: float) -> None:
        if self.change is not None and self.change.prev is not None:
            self.change_text = fmt_change(self.change, fmt)
            self.was_text = f"was {fmt(self.change.prev)}"
            self.was_y = was_y


@dataclass(kw_only=True)
class BarRow(Row):
    tip: str  # the row's tooltip
    segments: list[Segment]  # stacked parts, drawn instead of the bar
    sub: str  # after the value
    prev_bar: Box | None = None  # the other run's bar, under this run's
    prev_title: str = ""


@dataclass
class BarChart:
    chart: str  # data-chart
    heading: str  # aria-label
    width: int
    height: int
    label_x: float
    right_x: float  # right edge of the change column
    compared: bool
    rows: list[BarRow] = field(default_factory=list)


def bar_chart(
    chart: str,
    bars: list[Bar],
    *,
    width: int = FULL,
    label_w: int = 280,
    fmt: Callable[[float], str] = fmt_int,
    compared: bool = False,
    heading: str = "",
    value_w: int = 0,
    min_diff: float = rd.BIG_MIN_DIFF,
) -> BarChart | None:
    """Horizontal bars with the value written after each bar; with a comparison, a thin grey bar
    for the other run under each bar and the change in a column on the right. None: no bars."""
    if not bars:
        return None
    row_h = 34 if compared else 26
    bar_h = 16
    value_w = value_w or (150 if any(b.sub for b in bars) else 90)
    change_w = 200 if compared else 0
    x0 = label_w + 12
    span = width - x0 - value_w - change_w - 8
    top = max([b.value for b in bars] + [b.prev or 0 for b in bars] + [1])
    label_chars = int(label_w / 6.9)
    layout = BarChart(chart, heading or chart, width, 6 + len(bars) * row_h, label_w, width - 4, compared)
    for i, b in enumerate(bars):
        y = 6 + i * row_h
        w = span * b.value / top
        segments, x = [], x0
        for name, v, seg_color in b.segments or []:
            sw = span * v / top
            segments.append(Segment(Box(x, y, sw, bar_h), name, int(v), seg_color, f"{b.label} {DOT} {name}: {fmt(v)}"))
            x += sw
        row = BarRow(
            key=b.key,
            value=int(b.value),
            name=b.label,
            label=cut(b.label, label_chars),
            tip=f"{b.title or b.label}: {fmt(b.value)}",
            change=rd.change(b.value, b.prev, min_diff) if b.compared else None,
            band=Box(0, y - 3, width, row_h - 2),
            text_y=y + bar_h - 3,
            bar=Box(x0, y, max(w, 1.5 if b.value else 0), bar_h),
            color=b.color,
            segments=segments,
            value_x=x0 + w + 6,
            value_text=fmt(b.value),
            sub=b.sub,
        )
        row.describe_change(fmt, was_y=y + bar_h + 9)
        ch = row.change
        if ch is not None and ch.prev is not None:
            row.prev_bar = Box(x0, y + bar_h + 2, max(span * ch.prev / top, 1.5 if ch.prev else 0), 6)
            row.prev_title = f"previous run: {fmt(ch.prev)}"
        layout.rows.append(row)
    return layout


# --- the reconciliation waterfall --------------------------------------------------------------


@dataclass(kw_only=True)
class Step(Row):
    title: str
    connector: tuple[Point, Point] | None  # from the previous step's end
    strong: bool
    change_y: float = 0.0


@dataclass
class Waterfall:
    width: int
    height: int
    label_x: float
    right_x: float
    steps: list[Step]


def waterfall(rec: dict, other: dict | None) -> Waterfall:
    """Lines read, minus each way a line leaves, equals rows written: one bar per step, each
    starting where the previous one ended. `rec`/`other`: manifests' reconciliation sections."""
    total = rec.get("lines_read", 0)
    width, label_w = FULL, 250
    compared = other is not None
    value_w, change_w = 150, (200 if compared else 0)
    x0 = label_w + 12
    span = width - x0 - value_w - change_w - 8
    top = max(total, other.get("lines_read", 0) if other else 0, 1)
    row_h = 34 if compared else 28
    bar_h = 18
    names = dict(rd.RECONCILIATION_PARTS)
    parts = [("lines_read", "lines read", 0, total)]
    left = total
    for key in ("blank_lines", "rejected", "duplicates_removed", "outside_selected_dates", *rd.OPTIONAL_PARTS):
        if key in rd.OPTIONAL_PARTS and not (rec.get(key) or (other or {}).get(key)):
            continue
        n = rec.get(key, 0)
        parts.append((key, "\u2212 " + names[key], left - n, n))
        left -= n
    parts.append(("rows_written", "= rows written", 0, rec.get("rows_written", 0)))
    steps = []
    for i, (key, label, start, n) in enumerate(parts):
        y = 8 + i * row_h
        bx, bw = x0 + span * start / top, span * n / top
        middle = i not in (0, len(parts) - 1)
        step = Step(
            key=key,
            label=label,
            name=label.lstrip("\u2212= "),
            value=int(n),
            change=rd.change(n, other.get(key, 0)) if other is not None else None,
            band=Box(0, y - 4, width, row_h - 2),
            bar=Box(bx, y, max(bw, 2 if n else 0), bar_h),
            color=OUTCOME_COLORS[key],
            title=f"{label}: {fmt_int(n)}",
            text_y=y + bar_h - 4,
            value_x=max(bx + bw, x0) + 6,
            value_text=fmt_int(n) + ("" if key == "lines_read" else f" ({share(n, total)})"),
            connector=(Point(bx + bw, y - row_h + bar_h), Point(bx + bw, y)) if middle else None,
            strong=key in ("lines_read", "rows_written"),
        )
        step.describe_change(fmt_int, was_y=y + bar_h + 6)
        step.change_y = y + bar_h - 6
        steps.append(step)
    return Waterfall(width, 8 + len(parts) * row_h, label_w, width - 4, steps)


# --- rows per hour, stacked by event source -----------------------------------------------------


@dataclass
class DayBand:
    """One day of the hourly chart: its separator, label on top and hour ticks below."""

    day: str
    total: int
    separator_x: float | None  # None for the first day
    label: Point | None  # None when long runs label only every n-th day
    label_text: str
    ticks: list[tuple[float, str]]  # (x, '06h')


@dataclass(kw_only=True)
class HourColumn(Flagged):
    hour: str
    total: int
    segments: list[Segment] = field(default_factory=list)  # bottom up, one per event source with rows
    label: Point | None = None  # the total written along the column, when columns are wide enough
    label_text: str = ""
    mark: Point | None = None  # the tip of the triangle under a flagged hour
    mark_title: str = ""


@dataclass
class HourlyChart:
    width: int
    height: int
    left: int  # x of the plot's left edge
    right: int
    base: int  # y of the x axis
    grid: list[tuple[float, str]]  # (y, value) of each horizontal grid line
    days: list[DayBand]
    columns: list[HourColumn]
    prev_path: str  # the other run's totals as a step line ('' without a comparison)
    separator_top: int
    separator_bottom: int
    x_title: Point
    y_title: Point


def hourly_chart(
    dates: list[str],
    hours: list[str],
    hourly: dict[str, dict[str, int]],
    sources: list[str],
    colors: dict[str, str],
    prevs: dict[str, rd.Change],
) -> HourlyChart:
    """A column per hour, stacked by event source, days side by side; with a comparison, the other
    run's total per hour as a dashed step line and a red mark under each flagged hour."""
    totals = {h: sum(hourly.get(h, {}).values()) for h in hours}
    width, height = FULL, 392
    ml, mr, mt, mb = 70, 14, 46, 72
    pw, ph = width - ml - mr, height - mt - mb
    base = mt + ph
    ymax, step = nice_max(max(list(totals.values()) + [c.prev or 0 for c in prevs.values()] + [1]))
    slot = pw / len(hours)
    bw = max(slot * 0.8, 1)
    grid = []
    tick = 0.0
    while tick <= ymax + 1e-9:
        grid.append((base - ph * tick / ymax, fmt_int(tick)))
        tick += step
    day_w = 24 * slot
    label_every = 1 if day_w >= 50 else int(-(-50 // day_w))  # long runs: label every n-th day
    every = 6 if slot * 6 >= 24 else 12 if slot * 12 >= 24 else 0
    days = []
    for di, d in enumerate(dates):
        x = ml + di * day_w
        day_total = sum(totals.get(f"{d} {h:02d}:00", 0) for h in range(24))
        text = f"{d} {DOT} {fmt_int(day_total)} rows" if day_w >= 190 else d if day_w >= 80 else d[5:]
        days.append(
            DayBand(
                day=d,
                total=day_total,
                separator_x=x if di else None,
                label=Point(x + day_w / 2, mt - 26) if di % label_every == 0 else None,
                label_text=text,
                ticks=[(x + (h + 0.5) * slot, f"{h:02d}h") for h in (range(0, 24, every) if every else ())],
            )
        )
    columns = []
    for i, h in enumerate(hours):
        x = ml + i * slot + (slot - bw) / 2
        y = base
        column = HourColumn(hour=h, total=totals[h], change=prevs.get(h))
        counts = hourly.get(h, {})
        for s in sources:
            n = counts.get(s, 0)
            if not n:
                continue
            bh = ph * n / ymax
            y -= bh
            column.segments.append(Segment(Box(x, y, bw, bh), s, n, colors[s], f"{h} UTC {DOT} {s}: {fmt_int(n)} rows"))
        if slot >= 12 and totals[h]:
            column.label, column.label_text = Point(x + bw / 2, y - 4), fmt_int(totals[h])
        if column.big:
            column.mark, column.mark_title = Point(x + bw / 2, base + 22), f"{h}: {fmt_change(column.change)}"
        columns.append(column)
    prev_path = "".join(
        f"M{ml + i * slot:.1f},{base - ph * prevs[h].prev / ymax:.1f}H{ml + (i + 1) * slot:.1f}" for i, h in enumerate(hours) if h in prevs
    )
    return HourlyChart(
        width,
        height,
        ml,
        width - mr,
        base,
        grid,
        days,
        columns,
        prev_path,
        mt - 30,
        base + 34,
        Point(ml + pw / 2, height - 8),
        Point(16, mt + ph / 2),
    )
