"""What each part of the report shows: one function per section turns the gathered numbers of a run
(and of the run it is compared with) into the values its template draws.

Plain data only (numbers, texts, chart layouts): templates/sections.html.j2 holds the markup and
escapes every value. The sections are built in page order and register their big changes on the
Compare as they go; the summary of those changes is then drawn on top of the page.
"""

from __future__ import annotations

import os

from trackpipe.report import data as rd
from trackpipe.report.changes import Compare
from trackpipe.report.charts import (
    HALF,
    KIND_COLORS,
    OUTCOME_COLORS,
    PACKAGE_COLOR,
    SOURCE_COLORS,
    STREAM_COLORS,
    Bar,
    bar_chart,
    color,
    hourly_chart,
    waterfall,
)
from trackpipe.report.formatting import DASH, fmt_bytes, fmt_change, fmt_int, share

GPG = " \u00b7 gpg"
INPUT_ROWS = 500  # input files listed; the manifest has them all


def _key_numbers(m: dict) -> dict[str, int]:
    """The header's numbers of one run, from its manifest."""
    pkg = m.get("research_package")
    return {
        "lines_read": m.get("lines_read", 0),
        "events_parsed": m.get("events_parsed", 0),
        "rows_written_total": m.get("rows_written_total", 0),
        "duplicates_removed": (m.get("duplicates_removed") or {}).get("total", 0),
        "rejected_total": m.get("rejected_total", 0),
        "blank_lines": m.get("blank_lines", 0),
        "outside_selected_dates": m.get("outside_selected_dates", 0),
        "input_errors": len(m.get("input_errors") or []),
        "research_package_files": len(pkg["files"]) if pkg else 0,
    }


def header(run: rd.RunData, cmp: Compare | None) -> dict:
    m = run.manifest
    inputs = m.get("inputs") or []
    in_lines = sum(int(i.get("lines") or 0) for i in inputs)
    in_bytes = sum(int(i.get("bytes") or 0) for i in inputs)
    dates = run.dates
    dates_text = (f"{dates[0]} \u2192 {dates[-1]} ({len(dates)} days)" if len(dates) > 1 else dates[0]) if dates else "none"
    fmt_name = (m.get("config") or {}).get("format") or (m.get("options") or {}).get("format") or "parquet"
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
        if cmp.how == "date":
            how = "same dates"
        else:
            how = "days matched by position: " + ", ".join(f"{d} \u2194 {o or DASH}" for d, o in cmp.day_map.items())
        days = ", ".join(cmp.other.dates) or "no days"
        facts.append(("Compared with", f"run {om.get('run_id')} in {cmp.other.output} ({days}; {how})"))

    candidates = m.get("lines_read", 0) - m.get("blank_lines", 0)
    values = _key_numbers(m)
    prevs = _key_numbers(cmp.other.manifest) if cmp else None
    pkg = m.get("research_package")
    cards = [
        ("lines_read", "Lines read", "all input lines"),
        ("events_parsed", "Events parsed", f"{share(values['events_parsed'], candidates)} of non-blank lines"),
        ("rows_written_total", "Rows written", f"{len(m.get('partitions') or [])} partitions"),
        ("duplicates_removed", "Duplicates removed", f"{share(values['duplicates_removed'], values['events_parsed'])} of events"),
        ("rejected_total", "Rejected", f"{share(values['rejected_total'], candidates)} of non-blank lines"),
        ("blank_lines", "Blank lines", ""),
        ("outside_selected_dates", "Outside selected days", ""),
        ("input_errors", "Input errors", "files read only in part"),
        ("research_package_files", "Research package files", f"{len(run.packages or [])} orgs" if pkg else "packages not written"),
    ]
    numbers = []
    for key, label, sub in cards:
        value = values[key]
        ch = cmp.track("numbers", "Key numbers", label, rd.change(value, prevs[key])) if cmp is not None and prevs is not None else None
        numbers.append(
            {
                "key": key,
                "label": label,
                "value": int(value),
                "value_text": fmt_int(value),
                "sub": sub,
                "warn": key == "input_errors" and bool(value),
                "change": ch,
                "change_text": fmt_change(ch) if ch is not None else "",
                "was": fmt_int(ch.prev) if ch is not None else "",
            }
        )
    return {"facts": facts, "balanced": bool(m["reconciliation"].get("balanced")), "numbers": numbers}


def reconciliation(run: rd.RunData, cmp: Compare | None) -> dict:
    rec = run.manifest["reconciliation"]
    chart = waterfall(rec, cmp.other.manifest["reconciliation"] if cmp else None)
    if cmp is not None:
        cmp.track_rows("reconciliation", "Reconciliation", chart.steps)
    return {
        "chart": chart,
        "lines_read": rec.get("lines_read", 0),
        "parts": " + ".join(f"{fmt_int(rec.get(k, 0))} {label}" for k, label in rd.RECONCILIATION_PARTS),
        "balanced": bool(rec.get("balanced")),
    }


def _all_hours(dates: list[str], hourly: dict) -> list[str]:
    hours = [f"{d} {h:02d}:00" for d in dates for h in range(24)]
    extra = sorted(set(hourly) - set(hours))
    return hours + extra


def hourly(run: rd.RunData, cmp: Compare | None) -> dict:
    wh = run.warehouse
    hours = _all_hours(run.dates, wh.hourly)
    if not hours:
        return {"chart": None}
    sources = list(wh.sources)
    colors = {s: color(s, SOURCE_COLORS, i) for i, s in enumerate(sources)}
    totals = {h: sum(wh.hourly.get(h, {}).values()) for h in hours}
    prevs: dict[str, rd.Change] = {}
    if cmp is not None:
        for h in hours:
            oh = rd.other_hour(h, cmp.day_map)
            if oh is not None:
                prevs[h] = rd.change(totals[h], sum(cmp.other.warehouse.hourly.get(oh, {}).values()))
        cmp.track_hour_ranges(hours, prevs)
    table = []
    for h in hours:
        ch = prevs.get(h)
        table.append(
            {
                "hour": h,
                "counts": [wh.hourly.get(h, {}).get(s, 0) for s in sources],
                "total": totals[h],
                "prev": fmt_int(ch.prev) if ch else DASH,
                "change": fmt_change(ch) if ch else DASH,
                "big": ch is not None and ch.big,
            }
        )
    return {
        "chart": hourly_chart(run.dates, hours, wh.hourly, sources, colors, prevs),
        "legend": [(colors[s], s, fmt_int(sum(c.get(s, 0) for c in wh.hourly.values()))) for s in sources],
        "compared": bool(prevs),
        "sources": sources,
        "table": table,
        "total": wh.total,
        "files": wh.files,
    }


def rows(run: rd.RunData, cmp: Compare | None) -> dict:
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
    legend = [(STREAM_COLORS.get(s, PACKAGE_COLOR), s, fmt_int(sum(v for (st, _), v in run.rows.items() if st == s))) for s in streams]
    return {"legend": legend, "chart": _bar_chart(cmp, "rows", "Rows per stream and day", "rows", bars, label_w=300)}


def _bar_chart(cmp: Compare | None, anchor: str, heading: str, chart: str, bars: list[Bar], **layout):
    """A bar chart laid out, its flagged changes registered under the section `anchor`."""
    laid_out = bar_chart(chart, bars, compared=cmp is not None, heading=heading, **layout)
    if laid_out is not None and cmp is not None:
        cmp.track_rows(anchor, heading, laid_out.rows, layout.get("fmt", fmt_int))
    return laid_out


def _keys(counts: dict, other: dict | None) -> list:
    """This run's keys, then the other run's keys this run lacks."""
    return list(counts) + [k for k in (other or {}) if k not in counts]


def _share_bars(counts: dict, other: dict | None, total: int, pick_color) -> list[Bar]:
    """One bar per key with its count, its share of `total` and the other run's count."""
    return [
        Bar(
            k,
            k,
            counts.get(k, 0),
            pick_color(k, i),
            prev=other.get(k, 0) if other is not None else None,
            compared=other is not None,
            sub=f"({share(counts.get(k, 0), total)})",
        )
        for i, k in enumerate(_keys(counts, other))
    ]


def duplicates(run: rd.RunData, cmp: Compare | None) -> dict:
    dup = run.duplicates
    odup = cmp.other.duplicates if cmp else None
    kinds = _keys(dup.by_kind, odup.by_kind if odup else None)
    kind_bars = _share_bars(dup.by_kind, odup.by_kind if odup else None, dup.total, lambda k, i: color(k, KIND_COLORS, i))
    kind_colors = {k: color(k, KIND_COLORS, i) for i, k in enumerate(kinds)}
    sources = _keys(dup.by_source_kind, odup.by_source_kind if odup else None)
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
    half = {"width": HALF, "label_w": 120}
    return {
        "legend": [(kind_colors[k], k, fmt_int(dup.by_kind.get(k, 0))) for k in kinds],
        "by_kind": _bar_chart(cmp, "duplicates", "Duplicates by kind", "dup-kind", kind_bars, **half),
        "by_source": _bar_chart(cmp, "duplicates", "Duplicates by event source", "dup-source", source_bars, **half),
        "by_name": _bar_chart(cmp, "duplicates", "Duplicates by event name", "dup-names", name_bars, label_w=420),
        "top": len(top),
        "names": len(dup.by_name),
        "total": dup.total,
        "files": dup.files,
    }


def rejects(run: rd.RunData, cmp: Compare | None) -> dict:
    rej = run.rejects
    orej = cmp.other.rejects if cmp else None
    bars = _share_bars(rej.by_reason, orej.by_reason if orej else None, rej.total, lambda _k, _i: OUTCOME_COLORS["rejected"])
    examples = [
        {
            "reason": reason,
            "count": rej.by_reason[reason],
            "lines": [dict(ex, where=f"{os.path.basename(ex['source'])}:{ex['line_number']}") for ex in lines],
        }
        for reason, lines in rej.examples.items()
    ]
    return {
        "chart": _bar_chart(cmp, "rejects", "Rejects by reason", "rejects", bars, label_w=220),
        "examples": examples,
        "total": rej.total,
        "files": rej.files,
    }


def packages(run: rd.RunData, cmp: Compare | None) -> dict | None:
    if run.packages is None:
        return None
    other = {o.org: o for o in (cmp.other.packages or [])} if cmp else {}
    orgs = list(run.packages)
    bars = [
        Bar(
            o.org,
            o.org,
            o.bytes,
            PACKAGE_COLOR,
            prev=other[o.org].bytes if o.org in other else (0 if cmp else None),
            compared=cmp is not None,
            sub=f"{len(o.files)} files \u00b7 {fmt_int(o.events)} events",
        )
        for o in orgs
    ]
    heading = "Research package size per org"
    chart = _bar_chart(cmp, "packages", heading, "packages", bars, label_w=160, fmt=fmt_bytes, value_w=260, min_diff=64 * 1024)
    section = run.manifest.get("research_package") or {}
    left = section.get("left_out") or {}
    files = [
        {
            "org": o.org,
            "bytes": o.bytes,
            "files": [
                {
                    "path": f.get("path"),
                    "bytes": f.get("bytes"),
                    "text": f"{f.get('date')} \u00b7 {fmt_bytes(f.get('bytes') or 0)} \u00b7 {fmt_int(f.get('events') or 0)} ev"
                    + (GPG if f.get("encrypted") else ""),
                    "encrypted": bool(f.get("encrypted")),
                }
                for f in o.files
            ],
        }
        for o in orgs
    ]
    unsafe = (section.get("left_out_examples") or {}).get("unsafe_org") or []
    return {
        "chart": chart,
        "orgs": files,
        "files": len(section.get("files") or []),
        "bytes": sum(o.bytes for o in orgs),
        "left_out": ", ".join(f"{k} {fmt_int(v)}" for k, v in left.items()) or "none",
        "unsafe_count": left.get("unsafe_org", 0),
        "unsafe_examples": [rd.org_example(v) for v in unsafe],
    }


STORAGE_COLORS = {"warehouse": "#59a14f", "duplicates": "#e0a800", "rejects": "#e15759", "packages": "#4e79a7"}


def storage(run: rd.RunData, cmp: Compare | None) -> dict | None:
    """What each day costs to keep: bytes written per output kind and day (the manifest's
    `bytes_written`), beside the raw bytes read."""
    m = run.manifest
    written = m.get("bytes_written")
    if not written:
        return None  # a manifest from before trackpipe recorded it
    per_kind: dict[str, dict[str, int]] = {
        "warehouse": {},
        "duplicates": dict(written.get("duplicates") or {}),
        "packages": dict(written.get("packages") or {}),
    }
    for days in (written.get("warehouse") or {}).values():
        for day, n in days.items():
            per_kind["warehouse"][day] = per_kind["warehouse"].get(day, 0) + n
    bars = [
        Bar(f"{day}/{kind}", f"{day} \u00b7 {kind}", days[day], STORAGE_COLORS[kind], compared=False, title=f"{kind}, dt={day}")
        for day in sorted({d for days in per_kind.values() for d in days})
        for kind, days in per_kind.items()
        if days.get(day)
    ]
    stored = sum(sum(days.values()) for days in per_kind.values()) + int(written.get("rejects") or 0)
    read = int(m.get("bytes_read") or 0)
    legend = [(STORAGE_COLORS[k], k, fmt_bytes(sum(days.values()))) for k, days in per_kind.items()]
    legend.append((STORAGE_COLORS["rejects"], "rejects", fmt_bytes(int(written.get("rejects") or 0))))
    chart = bar_chart("storage", bars, compared=False, heading="Bytes written per day and output", label_w=300, fmt=fmt_bytes)
    return {
        "chart": chart,
        "legend": legend,
        "read": read,
        "stored": stored,
        "ratio": f"{stored / read:.2f}" if read else DASH,
    }


def inputs(run: rd.RunData) -> dict:
    files = run.manifest.get("inputs") or []
    shown = [(f.get("path"), f.get("lines") or 0, f.get("bytes") or 0) for f in files[:INPUT_ROWS]]
    return {"count": len(files), "files": shown, "more": max(len(files) - INPUT_ROWS, 0)}


def notes(run: rd.RunData, cmp: Compare | None) -> list[str]:
    return list(run.notes) + ([f"other run: {n}" for n in cmp.other.notes] if cmp else [])
