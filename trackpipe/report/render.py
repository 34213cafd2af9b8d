"""`trackpipe report OUT [--compare OTHER_OUT] [--html FILE]`: one self-contained HTML page per run.

The page is made of inline SVG charts drawn here (no script, no web font, nothing fetched), so it
opens anywhere, offline. Its numbers come from trackpipe.report.data, which reads the run's outputs
and manifest only. Every chart element carries its numbers in `data-*` attributes (data-key,
data-value, data-prev) and as visible text, so the page can be checked against the manifest.

With --compare, each chart shows the other run's numbers beside this run's, with the change
(absolute and %); changes over 20% are highlighted and listed at the top.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import html
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from trackpipe import __version__, storage
from trackpipe.errors import TrackpipeError
from trackpipe.report import data as rd
from trackpipe.storage.s3_settings import add_arguments as add_s3_arguments

REPORT_NAME = "report.html"
SUMMARY_ITEMS = 6  # flagged changes listed per chart at the top; the charts show all

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
}
KIND_COLORS = {"exact": "#e0a800", "client_resend": "#f6d365"}
STREAM_COLORS = {"research": "#59a14f", "internal_bi": "#8cd17d"}
PACKAGE_COLOR = "#4e79a7"
PREV_COLOR = "#9aa3ad"

DASH = "\u2013"
GPG = " \u00b7 gpg"
FULL = 1160  # SVG width of a full-width chart (px at a 1280px-wide window)
HALF = 560


def esc(value) -> str:
    return html.escape(str(value), quote=True)


# --- numbers as text ---------------------------------------------------------------------------


def fmt_int(n: float) -> str:
    return f"{int(round(n)):,}"


def fmt_bytes(n: float) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} TiB"


def fmt_pct(p: float) -> str:
    return f"{p:+.1%}".replace("-", "\u2212")


def fmt_change(ch: rd.Change, fmt: Callable[[float], str] = fmt_int) -> str:
    """'+1,234 (+5.6%)', 'new', 'no change'."""
    if ch.prev is None:
        return "no earlier value"
    if ch.diff == 0:
        return "no change"
    sign = "+" if ch.diff > 0 else "\u2212"
    text = f"{sign}{fmt(abs(ch.diff))}"
    if ch.pct is None:
        return f"{text} (new)"
    return f"{text} ({fmt_pct(ch.pct)})"


def _share(n: float, total: float) -> str:
    return f"{n / total:.1%}" if total else "\u2013"


def _cut(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: max(chars - 1, 1)] + "\u2026"


def _color(key: str, palette: dict[str, str], index: int) -> str:
    return palette.get(key) or EXTRA_COLORS[index % len(EXTRA_COLORS)]


def _nice_max(value: float) -> tuple[float, float]:
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


# --- comparison context ------------------------------------------------------------------------


@dataclass
class Compare:
    other: rd.RunData
    day_map: dict[str, str | None]
    how: str  # "date" | "position"
    big: list[tuple[str, str, str, rd.Change, Callable]] = field(default_factory=list)

    def track(self, anchor: str, chart: str, label: str, ch: rd.Change, fmt: Callable = fmt_int) -> rd.Change:
        if ch.big:
            self.big.append((anchor, chart, label, ch, fmt))
        return ch


def _attrs(ch: rd.Change | None) -> str:
    if ch is None or ch.prev is None:
        return ""
    pct = "" if ch.pct is None else f"{ch.pct:.4f}"
    return f' data-prev="{esc(int(ch.prev))}" data-change="{esc(int(ch.diff))}" data-change-pct="{pct}" data-big="{str(ch.big).lower()}"'


# --- SVG building blocks -----------------------------------------------------------------------


def _text(x: float, y: float, text: str, cls: str = "", anchor: str = "start", extra: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{c}{extra}>{esc(text)}</text>'


def _rect(x: float, y: float, w: float, h: float, fill: str, cls: str = "", extra: str = "", title: str | None = None) -> str:
    c = f' class="{cls}"' if cls else ""
    t = f"<title>{esc(title)}</title>" if title else ""
    return f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{h:.1f}" fill="{fill}"{c}{extra}>{t}</rect>'


def _svg(chart: str, width: float, height: float, body: list[str], label: str) -> str:
    return (
        f'<svg class="chart" data-chart="{esc(chart)}" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" '
        f'role="img" aria-label="{esc(label)}" xmlns="http://www.w3.org/2000/svg">' + "".join(body) + "</svg>"
    )


def _legend(entries: list[tuple[str, str, str]], extra: str = "") -> str:
    """entries: (colour, name, text); `extra` is raw HTML appended (e.g. the previous-run key)."""
    items = "".join(
        f'<span class="key" data-legend="{esc(name)}"><i style="background:{color}"></i>{esc(name)} <b>{esc(text)}</b></span>'
        for color, name, text in entries
    )
    return f'<div class="legend">{items}{extra}</div>'


PREV_KEY = f'<span class="key"><i class="prev-swatch" style="background:{PREV_COLOR}"></i>previous run</span>'


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


def hbar_chart(
    chart: str,
    bars: list[Bar],
    *,
    width: int = FULL,
    label_w: int = 280,
    fmt: Callable[[float], str] = fmt_int,
    cmp: Compare | None = None,
    anchor: str = "",
    heading: str = "",
    value_w: int = 0,
    min_diff: float = rd.BIG_MIN_DIFF,
) -> str:
    """Horizontal bars with the value written after each bar; with a comparison, a thin grey bar
    for the other run under each bar and the change in a column on the right."""
    if not bars:
        return '<p class="empty">Nothing to show.</p>'
    compare = cmp is not None
    row_h = 34 if compare else 26
    bar_h = 16
    value_w = value_w or (150 if any(b.sub for b in bars) else 90)
    change_w = 200 if compare else 0
    x0 = label_w + 12
    span = width - x0 - value_w - change_w - 8
    top = max([b.value for b in bars] + [b.prev or 0 for b in bars] + [1])
    label_chars = int(label_w / 6.9)
    body = []
    for i, b in enumerate(bars):
        y = 6 + i * row_h
        ch = rd.change(b.value, b.prev, min_diff) if b.compared else None
        if ch is not None and cmp is not None:
            cmp.track(anchor or chart, heading or chart, b.label, ch, fmt)
        big = ch is not None and ch.big
        parts = []
        if big:
            parts.append(_rect(0, y - 3, width, row_h - 2, "#fdecea", "row-bg"))
        tip = b.title or b.label
        parts.append(f"<title>{esc(tip)}: {esc(fmt(b.value))}</title>")
        parts.append(_text(label_w, y + bar_h - 3, _cut(b.label, label_chars), "label", "end"))
        w = span * b.value / top
        if b.segments:
            x = x0
            for name, v, color in b.segments:
                sw = span * v / top
                parts.append(
                    _rect(
                        x,
                        y,
                        sw,
                        bar_h,
                        color,
                        "seg",
                        f' data-segment="{esc(name)}" data-value="{esc(int(v))}"',
                        f"{b.label} \u00b7 {name}: {fmt(v)}",
                    )
                )
                x += sw
        else:
            parts.append(_rect(x0, y, max(w, 1.5 if b.value else 0), bar_h, b.color, "bar"))
        sub = f'<tspan class="sub" dx="6">{esc(b.sub)}</tspan>' if b.sub else ""
        parts.append(f'<text x="{x0 + w + 6:.1f}" y="{y + bar_h - 3:.1f}" class="value">{esc(fmt(b.value))}{sub}</text>')
        if ch is not None and ch.prev is not None:
            pw = span * ch.prev / top
            parts.append(
                _rect(x0, y + bar_h + 2, max(pw, 1.5 if ch.prev else 0), 6, PREV_COLOR, "prev-bar", "", f"previous run: {fmt(ch.prev)}")
            )
            parts.append(_text(width - 4, y + bar_h - 3, fmt_change(ch, fmt), "change big" if big else "change", "end"))
            parts.append(_text(width - 4, y + bar_h + 9, f"was {fmt(ch.prev)}", "was", "end"))
        elif compare:
            parts.append(_text(width - 4, y + bar_h - 3, "not compared", "change", "end"))
        cls = "row big" if big else "row"
        body.append(f'<g class="{cls}" data-key="{esc(b.key)}" data-value="{esc(int(b.value))}"{_attrs(ch)}>' + "".join(parts) + "</g>")
    height = 6 + len(bars) * row_h
    return _svg(chart, width, height, body, heading or chart)


# --- page sections -----------------------------------------------------------------------------


def _section(anchor: str, title: str, intro: str, content: str, cls: str = "") -> str:
    c = f"card {cls}".strip()
    return f'<section class="{c}" id="{esc(anchor)}"><h2>{esc(title)}</h2><p class="intro">{intro}</p>{content}</section>'


def _prev_manifest(cmp: Compare | None) -> dict | None:
    return cmp.other.manifest if cmp else None


def header(run: rd.RunData, cmp: Compare | None) -> str:
    m = run.manifest
    inputs = m.get("inputs") or []
    in_lines = sum(int(i.get("lines") or 0) for i in inputs)
    in_bytes = sum(int(i.get("bytes") or 0) for i in inputs)
    dates = run.dates
    dates_text = (f"{dates[0]} \u2192 {dates[-1]} ({len(dates)} days)" if len(dates) > 1 else dates[0]) if dates else "none"
    rec = m["reconciliation"]
    balanced = rec.get("balanced")
    badge = (
        '<span class="badge ok">reconciliation balanced</span>'
        if balanced
        else '<span class="badge bad">reconciliation does NOT balance</span>'
    )
    opts = m.get("options") or {}
    fmt_name = (m.get("config") or {}).get("format") or opts.get("format") or "parquet"
    facts = [
        ("Run", m.get("run_id")),
        ("Output", run.output),
        ("Days", dates_text),
        ("Started", m.get("started_at")),
        ("Published", m.get("published_at")),
        ("Inputs", f"{len(inputs):,} files, {in_lines:,} lines, {fmt_bytes(in_bytes)}"),
        ("Format", f"{fmt_name}, trackpipe {m.get('trackpipe_version', '?')}"),
    ]
    if cmp is not None:
        om = cmp.other.manifest
        od = cmp.other.dates
        how = (
            "same dates"
            if cmp.how == "date"
            else "days matched by position: " + ", ".join(f"{d} \u2194 {o or DASH}" for d, o in cmp.day_map.items())
        )
        facts.append(("Compared with", f"run {om.get('run_id')} in {cmp.other.output} ({', '.join(od) or 'no days'}; {how})"))
    fact_html = "".join(
        f'<div class="fact{" wide" if k == "Compared with" else ""}" data-fact="{esc(k.lower())}"><span>{esc(k)}</span><b>{esc(v)}</b></div>'
        for k, v in facts
    )

    candidates = m.get("lines_read", 0) - m.get("blank_lines", 0)
    pkg = m.get("research_package")
    cards = [
        ("lines_read", "Lines read", m.get("lines_read", 0), "all input lines"),
        (
            "events_parsed",
            "Events parsed",
            m.get("events_parsed", 0),
            f"{_share(m.get('events_parsed', 0), candidates)} of non-blank lines",
        ),
        ("rows_written_total", "Rows written", m.get("rows_written_total", 0), f"{len(m.get('partitions') or [])} partitions"),
        (
            "duplicates_removed",
            "Duplicates removed",
            (m.get("duplicates_removed") or {}).get("total", 0),
            f"{_share((m.get('duplicates_removed') or {}).get('total', 0), m.get('events_parsed', 0))} of events",
        ),
        ("rejected_total", "Rejected", m.get("rejected_total", 0), f"{_share(m.get('rejected_total', 0), candidates)} of non-blank lines"),
        ("blank_lines", "Blank lines", m.get("blank_lines", 0), ""),
        ("outside_selected_dates", "Outside selected days", m.get("outside_selected_dates", 0), ""),
        ("input_errors", "Input errors", len(m.get("input_errors") or []), "files read only in part"),
        (
            "research_package_files",
            "Research package files",
            len(pkg["files"]) if pkg else 0,
            f"{len(run.packages or [])} orgs" if pkg else "packages not written",
        ),
    ]
    om = _prev_manifest(cmp)
    prev_values = {}
    if om is not None:
        opkg = om.get("research_package")
        prev_values = {
            "lines_read": om.get("lines_read", 0),
            "events_parsed": om.get("events_parsed", 0),
            "rows_written_total": om.get("rows_written_total", 0),
            "duplicates_removed": (om.get("duplicates_removed") or {}).get("total", 0),
            "rejected_total": om.get("rejected_total", 0),
            "blank_lines": om.get("blank_lines", 0),
            "outside_selected_dates": om.get("outside_selected_dates", 0),
            "input_errors": len(om.get("input_errors") or []),
            "research_package_files": len(opkg["files"]) if opkg else 0,
        }
    card_html = []
    for key, label, value, sub in cards:
        ch = None
        cmp_html = ""
        if cmp is not None:
            ch = cmp.track("numbers", "Key numbers", label, rd.change(value, prev_values[key]))
            cls = "change big" if ch.big else "change"
            cmp_html = f'<div class="{cls}">{esc(fmt_change(ch))}</div><div class="was">was {esc(fmt_int(ch.prev))}</div>'
        warn = " warn" if key == "input_errors" and value else ""
        big = " big" if ch is not None and ch.big else ""
        card_html.append(
            f'<div class="num{warn}{big}" data-key="{esc(key)}" data-value="{esc(int(value))}"{_attrs(ch)}>'
            f'<span class="n-label">{esc(label)}</span><span class="n-value">{esc(fmt_int(value))}</span>'
            f'<span class="n-sub">{esc(sub)}</span>{cmp_html}</div>'
        )
    return (
        '<header class="card" id="numbers"><div class="title-row"><h1>trackpipe run report</h1>'
        f'{badge}</div><div class="facts">{fact_html}</div>'
        f'<div class="numbers" data-chart="numbers">{"".join(card_html)}</div></header>'
    )


def reconciliation(run: rd.RunData, cmp: Compare | None) -> str:
    rec = run.manifest["reconciliation"]
    orec = cmp.other.manifest["reconciliation"] if cmp else None
    total = rec.get("lines_read", 0)
    width, label_w = FULL, 250
    compare = cmp is not None
    value_w, change_w = 150, (200 if compare else 0)
    x0 = label_w + 12
    span = width - x0 - value_w - change_w - 8
    top = max(total, orec.get("lines_read", 0) if orec else 0, 1)
    row_h = 34 if compare else 28
    bar_h = 18
    steps = [("lines_read", "lines read", 0, total)]
    left = total
    for key in ("blank_lines", "rejected", "duplicates_removed", "outside_selected_dates"):
        n = rec.get(key, 0)
        steps.append((key, "\u2212 " + dict(rd.RECONCILIATION_PARTS)[key], left - n, n))
        left -= n
    steps.append(("rows_written", "= rows written", 0, rec.get("rows_written", 0)))
    body = []
    for i, (key, label, start, n) in enumerate(steps):
        y = 8 + i * row_h
        ch = None
        if orec is not None and cmp is not None:
            ch = cmp.track("reconciliation", "Reconciliation", label.lstrip("\u2212= "), rd.change(n, orec.get(key, 0)))
        big = ch is not None and ch.big
        parts = []
        if big:
            parts.append(_rect(0, y - 4, width, row_h - 2, "#fdecea", "row-bg"))
        parts.append(_text(label_w, y + bar_h - 4, label, "label strong" if key in ("lines_read", "rows_written") else "label", "end"))
        bx, bw = x0 + span * start / top, span * n / top
        parts.append(_rect(bx, y, max(bw, 2 if n else 0), bar_h, OUTCOME_COLORS[key], "bar", "", f"{label}: {fmt_int(n)}"))
        if i not in (0, len(steps) - 1):  # connector from the previous step
            parts.append(f'<line x1="{bx + bw:.1f}" y1="{y - row_h + bar_h:.1f}" x2="{bx + bw:.1f}" y2="{y:.1f}" class="connector"/>')
        pct = "" if key == "lines_read" else f" ({_share(n, total)})"
        parts.append(_text(max(bx + bw, x0) + 6, y + bar_h - 4, f"{fmt_int(n)}{pct}", "value"))
        if ch is not None:
            parts.append(_text(width - 4, y + bar_h - 6, fmt_change(ch), "change big" if big else "change", "end"))
            parts.append(_text(width - 4, y + bar_h + 6, f"was {fmt_int(ch.prev)}", "was", "end"))
        cls = "row big" if big else "row"
        body.append(f'<g class="{cls}" data-key="{esc(key)}" data-value="{esc(int(n))}"{_attrs(ch)}>' + "".join(parts) + "</g>")
    svg = _svg("reconciliation", width, 8 + len(steps) * row_h, body, "Reconciliation of input lines")
    eq_parts = " + ".join(f"{fmt_int(rec.get(k, 0))} {label}" for k, label in rd.RECONCILIATION_PARTS)
    ok = rec.get("balanced")
    mark = '<span class="badge ok">balanced</span>' if ok else '<span class="badge bad">does not balance</span>'
    equation = f'<p class="equation" data-balanced="{str(bool(ok)).lower()}">{fmt_int(total)} lines read = {esc(eq_parts)} {mark}</p>'
    intro = "Every input line ends up in exactly one place. From the manifest's <code>reconciliation</code>."
    return _section("reconciliation", "Reconciliation: where every input line went", intro, svg + equation)


def _all_hours(dates: list[str], hourly: dict) -> list[str]:
    hours = [f"{d} {h:02d}:00" for d in dates for h in range(24)]
    extra = sorted(set(hourly) - set(hours))
    return hours + extra


def hourly_chart(run: rd.RunData, cmp: Compare | None) -> str:
    wh = run.warehouse
    hours = _all_hours(run.dates, wh.hourly)
    if not hours:
        return _section("hourly", "Warehouse rows per hour, by event source", "", '<p class="empty">No rows.</p>')
    sources = list(wh.sources)
    colors = {s: _color(s, SOURCE_COLORS, i) for i, s in enumerate(sources)}
    totals = {h: sum(wh.hourly.get(h, {}).values()) for h in hours}
    prevs: dict[str, rd.Change] = {}
    if cmp is not None:
        for h in hours:
            oh = rd.other_hour(h, cmp.day_map)
            if oh is not None:
                prevs[h] = rd.change(totals[h], sum(cmp.other.warehouse.hourly.get(oh, {}).values()))
        _track_hour_ranges(cmp, hours, prevs)
    width, height = FULL, 392
    ml, mr, mt, mb = 70, 14, 46, 72
    pw, ph = width - ml - mr, height - mt - mb
    ymax, step = _nice_max(max(list(totals.values()) + [c.prev or 0 for c in prevs.values()] + [1]))
    slot = pw / len(hours)
    bw = max(slot * 0.8, 1)
    body = []
    tick = 0.0
    while tick <= ymax + 1e-9:
        y = mt + ph - ph * tick / ymax
        body.append(f'<line x1="{ml}" y1="{y:.1f}" x2="{width - mr}" y2="{y:.1f}" class="grid"/>')
        body.append(_text(ml - 6, y + 4, fmt_int(tick), "tick", "end"))
        tick += step
    # day bands: separators, date and rows of the day on top, hour ticks below
    day_w = 24 * slot
    label_every = 1 if day_w >= 50 else int(-(-50 // day_w))  # long runs: label every n-th day
    every = 6 if slot * 6 >= 24 else 12 if slot * 12 >= 24 else 0
    for di, d in enumerate(run.dates):
        x = ml + di * day_w
        if di:
            body.append(f'<line x1="{x:.1f}" y1="{mt - 30}" x2="{x:.1f}" y2="{mt + ph + 34}" class="day-sep"/>')
        day_total = sum(totals.get(f"{d} {h:02d}:00", 0) for h in range(24))
        text = f"{d} \u00b7 {fmt_int(day_total)} rows" if day_w >= 190 else d if day_w >= 80 else d[5:]
        if di % label_every == 0:
            body.append(_text(x + day_w / 2, mt - 26, text, "day-label", "middle", f' data-day="{esc(d)}" data-value="{day_total}"'))
        for h in range(0, 24, every) if every else ():
            tx = x + (h + 0.5) * slot
            body.append(f'<line x1="{tx:.1f}" y1="{mt + ph}" x2="{tx:.1f}" y2="{mt + ph + 4}" class="axis"/>')
            body.append(_text(tx, mt + ph + 16, f"{h:02d}h", "tick", "middle"))
    label_bars = slot >= 12
    for i, h in enumerate(hours):
        x = ml + i * slot + (slot - bw) / 2
        y = mt + ph
        parts = []
        ch = prevs.get(h)
        counts = wh.hourly.get(h, {})
        for s in sources:
            n = counts.get(s, 0)
            if not n:
                continue
            bh = ph * n / ymax
            y -= bh
            parts.append(
                _rect(x, y, bw, bh, colors[s], "seg", f' data-source="{esc(s)}" data-value="{n}"', f"{h} UTC \u00b7 {s}: {fmt_int(n)} rows")
            )
        if label_bars and totals[h]:
            cx, cy = x + bw / 2, y - 4
            parts.append(
                f'<text class="bar-label" x="{cx:.1f}" y="{cy:.1f}" transform="rotate(-90 {cx:.1f} {cy:.1f})">{esc(fmt_int(totals[h]))}</text>'
            )
        if ch is not None and ch.big:
            parts.append(
                f'<path class="big-mark" d="M{x + bw / 2:.1f},{mt + ph + 22:.1f} l-5,9 h10 z"><title>{esc(h)}: {esc(fmt_change(ch))}</title></path>'
            )
        cls = "hour big" if ch is not None and ch.big else "hour"
        body.append(f'<g class="{cls}" data-hour="{esc(h)}" data-value="{totals[h]}"{_attrs(ch)}>' + "".join(parts) + "</g>")
    if prevs:  # the other run's totals as a step line
        d_parts = []
        for i, h in enumerate(hours):
            ch = prevs.get(h)
            if ch is None:
                continue
            y = mt + ph - ph * ch.prev / ymax
            x1, x2 = ml + i * slot, ml + (i + 1) * slot
            d_parts.append(f"M{x1:.1f},{y:.1f}H{x2:.1f}")
        body.append(f'<path class="prev-line" d="{"".join(d_parts)}"/>')
    body.append(f'<line x1="{ml}" y1="{mt + ph}" x2="{width - mr}" y2="{mt + ph}" class="axis"/>')
    body.append(_text(ml + pw / 2, height - 8, "hour of received_at (UTC); dt partitions are received_at dates", "axis-title", "middle"))
    body.append(
        f'<text class="axis-title" transform="rotate(-90 16 {mt + ph / 2:.1f})" x="16" y="{mt + ph / 2:.1f}" text-anchor="middle">rows per hour</text>'
    )
    svg = _svg("hourly", width, height, body, "Warehouse rows per hour by event source")
    per_source = {s: sum(c.get(s, 0) for c in wh.hourly.values()) for s in sources}
    prev_key = (
        f'<span class="key"><i class="prev-line-key"></i>previous run (total per hour)</span><span class="key"><i class="big-key"></i>change over {rd.BIG_CHANGE:.0%}</span>'
        if prevs
        else ""
    )
    legend = _legend([(colors[s], s, fmt_int(per_source[s])) for s in sources], prev_key)
    table = _hourly_table(hours, sources, wh.hourly, totals, prevs)
    intro = (
        f"{fmt_int(wh.total)} rows in {wh.files} warehouse files of the run's partitions (all streams), "
        "counted by the hour of <code>received_at</code> (UTC) and <code>event_source</code>."
    )
    return _section("hourly", "Warehouse rows per hour, by event source", intro, legend + svg + table)


def _track_hour_ranges(cmp: Compare, hours: list[str], prevs: dict[str, rd.Change]) -> None:
    """List flagged hours in the change summary as ranges of consecutive hours going the same way
    (a lost log file shows as one line, not 24)."""
    run: list[str] = []

    def flush() -> None:
        if run:
            value = sum(prevs[h].value for h in run)
            prev = sum(prevs[h].prev for h in run)
            label = run[0] if len(run) == 1 else f"{run[0]} \u2013 {run[-1][11:]} ({len(run)} hours)"
            cmp.big.append(
                (
                    "hourly",
                    "Rows per hour",
                    label,
                    rd.Change(value, prev, value - prev, (value - prev) / prev if prev else None, True),
                    fmt_int,
                )
            )
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


def _hourly_table(hours, sources, hourly, totals, prevs) -> str:
    head = "".join(f"<th>{esc(s)}</th>" for s in sources)
    cmp_head = "<th>previous run</th><th>change</th>" if prevs else ""
    rows = []
    for h in hours:
        ch = prevs.get(h)
        cells = "".join(f"<td>{fmt_int(hourly.get(h, {}).get(s, 0))}</td>" for s in sources)
        extra = ""
        if prevs:
            extra = f"<td>{fmt_int(ch.prev) if ch else DASH}</td><td>{esc(fmt_change(ch)) if ch else DASH}</td>"
        cls = ' class="big"' if ch is not None and ch.big else ""
        rows.append(f"<tr{cls}><td>{esc(h)}</td>{cells}<td><b>{fmt_int(totals[h])}</b></td>{extra}</tr>")
    return (
        f'<details><summary>Rows per hour as a table ({len(hours)} hours)</summary><table class="data"><thead><tr><th>hour (UTC)</th>{head}<th>total</th>{cmp_head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></details>"
    )


def rows_chart(run: rd.RunData, cmp: Compare | None) -> str:
    bars = []
    streams = sorted({s for s, _ in run.rows}, key=lambda s: (s != "research", s))
    other_rows = cmp.other.rows if cmp else {}
    for s in streams:
        for d in run.dates or sorted({d for _, d in run.rows}):
            n = run.rows.get((s, d), 0)
            label = f"{s} \u00b7 {d}"
            prev, compared = None, False
            if cmp is not None:
                od = cmp.day_map.get(d)
                compared = od is not None
                prev = other_rows.get((s, od), 0) if od else None
                if od and od != d:
                    label += f" (vs {od})"
            bars.append(Bar(f"{s}/{d}", label, n, STREAM_COLORS.get(s, PACKAGE_COLOR), prev=prev, compared=compared, title=f"{s}, dt={d}"))
    legend = _legend(
        [(STREAM_COLORS.get(s, PACKAGE_COLOR), s, fmt_int(sum(v for (st, _), v in run.rows.items() if st == s))) for s in streams],
        PREV_KEY if cmp else "",
    )
    chart = hbar_chart("rows", bars, label_w=300, cmp=cmp, anchor="rows", heading="Rows per stream and day")
    intro = "From the manifest's <code>rows_written</code>; a day of the run with no rows for a stream shows 0."
    return _section("rows", "Rows written per stream and day", intro, legend + chart)


def _keys(counts: dict, other: dict | None) -> list:
    """This run's keys, then the other run's keys this run lacks."""
    return list(counts) + [k for k in (other or {}) if k not in counts]


def _share_bars(counts: dict, other: dict | None, total: int, color) -> list[Bar]:
    """One bar per key with its count, its share of `total` and the other run's count."""
    return [
        Bar(
            k,
            k,
            counts.get(k, 0),
            color(k, i),
            prev=other.get(k, 0) if other is not None else None,
            compared=other is not None,
            sub=f"({_share(counts.get(k, 0), total)})",
        )
        for i, k in enumerate(_keys(counts, other))
    ]


def duplicates_charts(run: rd.RunData, cmp: Compare | None) -> str:
    dup = run.duplicates
    odup = cmp.other.duplicates if cmp else None
    kinds = _keys(dup.by_kind, odup.by_kind if odup else None)
    kind_bars = _share_bars(dup.by_kind, odup.by_kind if odup else None, dup.total, lambda k, i: _color(k, KIND_COLORS, i))
    kind_colors = {k: _color(k, KIND_COLORS, i) for i, k in enumerate(kinds)}
    sources = list(dup.by_source_kind) + [s for s in (odup.by_source_kind if odup else {}) if s not in dup.by_source_kind]
    source_bars = []
    for s in sources:
        per_kind = dup.by_source_kind.get(s, {})
        segs = [(k, per_kind.get(k, 0), kind_colors[k]) for k in kinds if per_kind.get(k, 0)]
        detail = ", ".join(f"{k} {fmt_int(v)}" for k, v, _ in segs)
        prev = sum(odup.by_source_kind.get(s, {}).values()) if odup else None
        source_bars.append(Bar(s, s, sum(per_kind.values()), segments=segs, prev=prev, compared=odup is not None, title=f"{s} ({detail})"))
    top = list(dup.by_name.items())[: rd.TOP_NAMES]
    name_bars = [
        Bar(
            name,
            name or "(no name)",
            n,
            KIND_COLORS["exact"],
            prev=odup.by_name.get(name, 0) if odup else None,
            compared=odup is not None,
            title=name,
        )
        for name, n in top
    ]
    legend = _legend([(kind_colors[k], k, fmt_int(dup.by_kind.get(k, 0))) for k in kinds], PREV_KEY if cmp else "")
    kind_chart = hbar_chart("dup-kind", kind_bars, width=HALF, label_w=120, cmp=cmp, anchor="duplicates", heading="Duplicates by kind")
    source_chart = hbar_chart(
        "dup-source", source_bars, width=HALF, label_w=120, cmp=cmp, anchor="duplicates", heading="Duplicates by event source"
    )
    names_chart = hbar_chart("dup-names", name_bars, label_w=420, cmp=cmp, anchor="duplicates", heading="Duplicates by event name")
    intro = (
        f"{fmt_int(dup.total)} removed copies in the duplicates audit ({dup.files} files): <b>exact</b> copies of a line, "
        "and <b>client_resend</b>s (a browser/mobile client sending the same event again within the dedup window)."
    )
    content = (
        legend
        + '<div class="two">'
        + f"<div><h3>By kind</h3>{kind_chart}</div><div><h3>By event source (split by kind)</h3>{source_chart}</div></div>"
        + f"<h3>Top {len(top)} event names (of {len(dup.by_name):,})</h3>{names_chart}"
    )
    return _section("duplicates", "Duplicates removed", intro, content)


def rejects_section(run: rd.RunData, cmp: Compare | None) -> str:
    rej = run.rejects
    orej = cmp.other.rejects if cmp else None
    bars = _share_bars(rej.by_reason, orej.by_reason if orej else None, rej.total, lambda _k, _i: OUTCOME_COLORS["rejected"])
    chart = hbar_chart("rejects", bars, label_w=220, cmp=cmp, anchor="rejects", heading="Rejects by reason")
    blocks = []
    for reason, examples in rej.examples.items():
        items = []
        for ex in examples:
            where = f"{os.path.basename(ex['source'])}:{ex['line_number']}"
            cut = '<span class="cut" title="cut for the report">\u2026</span>' if ex["cut"] else ""
            items.append(
                f'<li class="example"><div class="where" title="{esc(ex["source"])}">{esc(where)} \u2014 {esc(ex["detail"])}</div>'
                f"<code>{esc(ex['line'])}{cut}</code></li>"
            )
        blocks.append(
            f'<div class="examples" data-examples="{esc(reason)}"><h4>{esc(reason)} <span class="muted">{fmt_int(rej.by_reason[reason])} lines</span></h4><ol>{"".join(items)}</ol></div>'
        )
    intro = (
        f"{fmt_int(rej.total)} rejected lines in {rej.files} rejects files, with up to {rd.EXAMPLES_PER_REASON} example lines per reason "
        f"(first {rd.EXAMPLE_CHARS} characters; usernames, user ids, sessions, IP and e-mail addresses masked as {rd.MASK})."
    )
    examples_html = "".join(blocks) or '<p class="empty">No rejected lines.</p>'
    return _section("rejects", "Rejected lines by reason", intro, chart + "<h3>Examples</h3>" + examples_html)


def packages_section(run: rd.RunData, cmp: Compare | None) -> str:
    m = run.manifest
    if run.packages is None:
        return _section("packages", "Research packages", "This run wrote no research packages (<code>--no-package</code>).", "")
    other = {o.org: o for o in (cmp.other.packages or [])} if cmp else {}
    orgs = list(run.packages)
    bars = []
    for o in orgs:
        prev = other[o.org].bytes if o.org in other else (0 if cmp else None)
        bars.append(
            Bar(
                o.org,
                o.org,
                o.bytes,
                PACKAGE_COLOR,
                prev=prev,
                compared=cmp is not None,
                sub=f"{len(o.files)} files \u00b7 {fmt_int(o.events)} events",
            )
        )
    chart = hbar_chart(
        "packages",
        bars,
        label_w=160,
        fmt=fmt_bytes,
        cmp=cmp,
        anchor="packages",
        heading="Research package size per org",
        value_w=260,
        min_diff=64 * 1024,
    )
    rows = []
    for o in orgs:
        chips = "".join(
            f'<span class="chip{" enc" if f.get("encrypted") else ""}" title="{esc(f.get("path"))}" data-file="{esc(f.get("path"))}" data-bytes="{esc(f.get("bytes"))}">'
            f"{esc(f.get('date'))} \u00b7 {esc(fmt_bytes(f.get('bytes') or 0))} \u00b7 {esc(fmt_int(f.get('events') or 0))} ev{GPG if f.get('encrypted') else ''}</span>"
            for f in o.files
        )
        rows.append(f'<tr data-org="{esc(o.org)}"><td>{esc(o.org)}</td><td>{chips}</td><td class="r">{esc(fmt_bytes(o.bytes))}</td></tr>')
    table = f'<table class="data packages"><thead><tr><th>org</th><th>files (date \u00b7 size \u00b7 events)</th><th class="r">total</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
    section = m.get("research_package") or {}
    left = section.get("left_out") or {}
    left_text = ", ".join(f"{k} {fmt_int(v)}" for k, v in left.items()) or "none"
    total_bytes = sum(o.bytes for o in orgs)
    intro = (
        f"{len(section.get('files') or [])} files, {fmt_bytes(total_bytes)} for {len(orgs)} orgs, from the manifest's <code>research_package</code>. "
        f"Events left out of the packages: {esc(left_text)}."
    )
    unsafe = (section.get("left_out_examples") or {}).get("unsafe_org") or []
    if unsafe:
        items = "".join(f"<li><code>{esc(rd.org_example(v))}</code></li>" for v in unsafe)
        table += (
            f'<p class="unsafe-orgs-intro">{fmt_int(left.get("unsafe_org", 0))} events have an org that cannot name a package folder '
            "(characters outside letters, digits, <code>_ - . ~</code>, a leading dot or underscore, <code>..</code>, or too long); "
            f'they stay in the warehouse with their org as logged. Examples (masked):</p><ul class="unsafe-orgs">{items}</ul>'
        )
    return _section("packages", "Research package files per org", intro, chart + table)


def inputs_section(run: rd.RunData) -> str:
    inputs = run.manifest.get("inputs") or []
    limit = 500
    rows = "".join(
        f'<tr><td>{esc(i.get("path"))}</td><td class="r">{fmt_int(i.get("lines") or 0)}</td><td class="r">{esc(fmt_bytes(i.get("bytes") or 0))}</td></tr>'
        for i in inputs[:limit]
    )
    more = f'<p class="muted">\u2026 and {len(inputs) - limit:,} more (see the manifest).</p>' if len(inputs) > limit else ""
    return (
        f'<section class="card" id="inputs"><details><summary><h2 class="inline">Input files ({len(inputs):,})</h2></summary>'
        f'<table class="data"><thead><tr><th>path</th><th class="r">lines</th><th class="r">size</th></tr></thead><tbody>{rows}</tbody></table>{more}</details></section>'
    )


def notes_section(run: rd.RunData, cmp: Compare | None) -> str:
    out = []
    notes = list(run.notes) + ([f"other run: {n}" for n in cmp.other.notes] if cmp else [])
    if notes:
        items = "".join(f"<li>{esc(n)}</li>" for n in notes)
        out.append(f'<section class="card warn" id="notes"><h2>Warnings</h2><ul>{items}</ul></section>')
    if cmp is not None:
        if cmp.big:
            groups: dict[tuple[str, str], list] = {}
            for anchor, chart, label, ch, fmt in cmp.big:
                groups.setdefault((anchor, chart), []).append((label, ch, fmt))
            blocks = []
            for (anchor, chart), entries in groups.items():
                items = "".join(
                    f'<li data-big="{esc(chart)}"><b>{esc(label)}</b> {esc(fmt(ch.value))} (was {esc(fmt(ch.prev))}) '
                    f'<span class="change big">{esc(fmt_change(ch, fmt))}</span></li>'
                    for label, ch, fmt in entries[:SUMMARY_ITEMS]
                )
                if len(entries) > SUMMARY_ITEMS:
                    items += f'<li class="muted">\u2026 and {len(entries) - SUMMARY_ITEMS} more in the chart</li>'
                blocks.append(
                    f'<div class="big-group"><h3><a href="#{esc(anchor)}">{esc(chart)}</a> <span class="muted">{len(entries)}</span></h3><ul>{items}</ul></div>'
                )
            body = f'<div class="big-list">{"".join(blocks)}</div>'
            title = f"{len(cmp.big)} changes over {rd.BIG_CHANGE:.0%} against the other run"
        else:
            body = "<p>Every compared number is within 20% of the other run.</p>"
            title = f"No change over {rd.BIG_CHANGE:.0%} against the other run"
        out.append(
            f'<section class="card {"alert" if cmp.big else "calm"}" id="changes" data-big-count="{len(cmp.big)}"><h2>{esc(title)}</h2>{body}</section>'
        )
    return "".join(out)


CSS = """
:root { --ink:#1f2933; --muted:#616e7c; --line:#d9dee3; --bg:#f3f5f7; --card:#fff; --bad:#c62828; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 16px 20px 40px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:16px 20px; margin:0 0 16px; }
h1 { font-size:22px; margin:0; } h2 { font-size:17px; margin:0 0 4px; } h3 { font-size:14px; margin:14px 0 6px; color:#323f4b; }
h4 { font-size:13px; margin:12px 0 4px; } h2.inline { display:inline; }
.intro { color:var(--muted); margin:0 0 10px; } code { font-family: "DejaVu Sans Mono", monospace; font-size:12px; }
.title-row { display:flex; align-items:center; gap:14px; margin-bottom:10px; }
.badge { border-radius:12px; padding:2px 10px; font-size:12px; font-weight:600; }
.badge.ok { background:#e3f4e4; color:#1b5e20; } .badge.bad { background:#fdecea; color:var(--bad); }
.facts { display:grid; grid-template-columns: repeat(auto-fill, minmax(330px, 1fr)); gap:2px 20px; margin-bottom:12px; }
.fact span { color:var(--muted); display:inline-block; min-width:84px; margin-right:8px; } .fact b { font-weight:600; overflow-wrap:anywhere; }
.fact.wide { grid-column: 1 / -1; } .sub { fill:var(--muted); font-weight:400; }
.numbers { display:grid; grid-template-columns: repeat(auto-fill, minmax(116px, 1fr)); gap:8px; }
.num { border:1px solid var(--line); border-radius:6px; padding:8px 10px; display:flex; flex-direction:column; }
.num.warn { border-color:#f4b400; background:#fff8e1; } .num.big { border-color:#e57373; background:#fdecea; }
.n-label { color:var(--muted); font-size:12px; } .n-value { font-size:20px; font-weight:700; } .n-sub { color:var(--muted); font-size:11px; }
.change { font-size:12px; fill:var(--muted); color:var(--muted); } .change.big { fill:var(--bad); color:var(--bad); font-weight:700; }
.was { font-size:10.5px; fill:var(--muted); color:var(--muted); }
svg.chart { display:block; width:100%; height:auto; max-width:100%; overflow:visible; }
svg text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
.label { font-size:12px; fill:#323f4b; } .label.strong { font-weight:700; } .value { font-size:12px; fill:#1f2933; font-weight:600; }
.tick { font-size:11px; fill:var(--muted); } .axis-title { font-size:12px; fill:#323f4b; } .day-label { font-size:12px; font-weight:600; fill:#323f4b; }
.bar-label { font-size:9.5px; fill:#323f4b; paint-order:stroke; stroke:#fff; stroke-width:3px; stroke-linejoin:round; } .grid { stroke:#eceff1; } .axis { stroke:#9aa5b1; } .day-sep { stroke:#9aa5b1; stroke-dasharray:4 3; }
.connector { stroke:#9aa5b1; stroke-dasharray:2 2; } .prev-line { fill:none; stroke:#1f2933; stroke-width:1.6; stroke-dasharray:5 3; }
.big-mark { fill:var(--bad); }
.legend { display:flex; flex-wrap:wrap; gap:6px 18px; margin:4px 0 8px; font-size:12px; }
.legend .key { display:inline-flex; align-items:center; gap:6px; } .legend i { width:12px; height:12px; border-radius:2px; display:inline-block; }
.legend i.prev-swatch { height:5px; } .legend i.prev-line-key { height:0; border-top:2px dashed #1f2933; width:18px; border-radius:0; }
.legend i.big-key { width:0; height:0; border-left:6px solid transparent; border-right:6px solid transparent; border-bottom:10px solid var(--bad); border-radius:0; }
.two { display:grid; grid-template-columns: 1fr 1fr; gap:24px; }
.equation { margin:8px 0 0; font-weight:600; }
table.data { border-collapse:collapse; width:100%; font-size:12px; margin-top:8px; }
table.data th, table.data td { border-bottom:1px solid #eceff1; padding:3px 8px; text-align:left; vertical-align:top; }
table.data th { color:var(--muted); font-weight:600; } .r { text-align:right !important; white-space:nowrap; }
table.data tr.big td { background:#fdecea; color:var(--bad); font-weight:600; }
.chip { display:inline-block; border:1px solid #c5d3e3; background:#eef3f9; border-radius:10px; padding:0 8px; margin:2px 4px 2px 0; white-space:nowrap; }
.chip.enc { border-color:#b7dfb9; background:#e8f5e9; }
details summary { cursor:pointer; color:#3e4c59; margin-top:6px; }
.examples ol { margin:0; padding-left:22px; } .example { margin:0 0 6px; }
.example .where { color:var(--muted); font-size:12px; word-break:break-all; }
.example code { display:block; background:#f7f8fa; border:1px solid #eceff1; border-radius:4px; padding:4px 6px; white-space:pre-wrap; word-break:break-all; }
.cut { color:var(--bad); font-weight:700; padding-left:2px; } .muted { color:var(--muted); font-weight:400; } .empty { color:var(--muted); }
.card.warn { border-color:#f4b400; background:#fffbeb; } .card.alert { border-color:#e57373; background:#fff5f5; } .card.calm { border-color:#a5d6a7; }
.big-list { columns: 2; column-gap:28px; } .big-group { break-inside:avoid; margin-bottom:6px; } .big-group h3 { margin:6px 0 2px; }
.big-group ul { margin:0; padding-left:18px; } .big-group li { margin-bottom:1px; }
footer { color:var(--muted); font-size:12px; text-align:center; }
@media (max-width: 900px) { .two { grid-template-columns: 1fr; } .big-list { columns:1; } }
"""


def render(run: rd.RunData, other: rd.RunData | None = None) -> str:
    cmp = None
    if other is not None:
        day_map, how = rd.align_dates(run.dates, other.dates)
        cmp = Compare(other, day_map, how)
    # The parts register big changes on `cmp` as they are drawn; the summary goes on top.
    top = header(run, cmp)
    sections = [
        reconciliation(run, cmp),
        hourly_chart(run, cmp),
        rows_chart(run, cmp),
        duplicates_charts(run, cmp),
        rejects_section(run, cmp),
        packages_section(run, cmp),
        inputs_section(run),
    ]
    notes = notes_section(run, cmp)
    generated = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    title = f"trackpipe report \u00b7 {run.manifest.get('run_id')}"
    nav = " \u00b7 ".join(
        f'<a href="#{a}">{t}</a>'
        for a, t in [
            ("reconciliation", "reconciliation"),
            ("hourly", "rows per hour"),
            ("rows", "rows per day"),
            ("duplicates", "duplicates"),
            ("rejects", "rejects"),
            ("packages", "research packages"),
            ("inputs", "inputs"),
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
        f'{top}<nav class="card">{nav}</nav>{notes}{"".join(sections)}'
        f"<footer>Written by trackpipe {esc(__version__)} at {esc(generated)} from {esc(run.output)} (manifest and outputs only).</footer>"
        "</main></body></html>\n"
    )


def write_report(output: str, html_path: str | None = None, compare: str | None = None) -> str:
    """Write the HTML report of the run in `output` (default: OUTPUT/report.html); returns its path."""
    run = rd.gather(output)
    other = rd.gather(compare) if compare else None
    page = render(run, other)
    path = html_path or storage.join(output, REPORT_NAME)
    try:
        storage.write_atomic(path, page.encode("utf-8"))
    except OSError as exc:
        raise TrackpipeError(storage.disk_error_message(exc, path)) from None
    return path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trackpipe report",
        description="Write a self-contained HTML data-quality report of a run's output: rows per hour and event source, "
        "duplicates, rejects with masked examples, rows per stream and day, research packages and the reconciliation. "
        "Reads the manifest and the outputs only (local folder or s3:// URL).",
    )
    parser.add_argument("output", metavar="OUT", help="the output folder of a finished `trackpipe run` (holds _manifest.json)")
    parser.add_argument("--compare", metavar="OTHER_OUT", help="another run's output folder to show beside this one, with the changes")
    parser.add_argument("--html", metavar="FILE", help=f"where to write the page (default: OUT/{REPORT_NAME})")
    add_s3_arguments(parser)
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        from trackpipe.storage.s3_settings import configure_from_args

        configure_from_args(args)
        path = write_report(args.output, args.html, args.compare)
    except TrackpipeError as exc:
        if os.environ.get("TRACKPIPE_DEBUG"):
            traceback.print_exc()
        print(f"trackpipe: error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
