"""Numbers as the report writes them: '1,234', '2.0 KiB', '+5.6%', '+1,234 (+5.6%)'.

Plain text, no HTML: the templates escape whatever these return.
"""

from __future__ import annotations

from collections.abc import Callable

from trackpipe.report import data as rd

DASH = "\u2013"
ELLIPSIS = "\u2026"
MINUS = "\u2212"
DOT = "\u00b7"


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
    return f"{p:+.1%}".replace("-", MINUS)


def fmt_change(ch: rd.Change, fmt: Callable[[float], str] = fmt_int) -> str:
    """'+1,234 (+5.6%)', 'new', 'no change'."""
    if ch.prev is None:
        return "no earlier value"
    if ch.diff == 0:
        return "no change"
    sign = "+" if ch.diff > 0 else MINUS
    text = f"{sign}{fmt(abs(ch.diff))}"
    if ch.pct is None:
        return f"{text} (new)"
    return f"{text} ({fmt_pct(ch.pct)})"


def share(n: float, total: float) -> str:
    """`n` as a share of `total`: '12.5%' ('–' when the total is 0)."""
    return f"{n / total:.1%}" if total else DASH


def cut(text: str, chars: int) -> str:
    """`text` cut to `chars` characters, the last one an ellipsis when cut."""
    return text if len(text) <= chars else text[: max(chars - 1, 1)] + ELLIPSIS
