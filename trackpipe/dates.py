"""The days a command works on: `--date D` or `--start-date D1 --end-date D2`. No Beam here."""

from __future__ import annotations

from trackpipe.errors import ConfigError
from trackpipe.events.times import date_to_day

MAX_DAYS = 3660


def selected_days(date: str | None, start: str | None, end: str | None) -> frozenset[int] | None:
    """The days to write (days since the epoch), or None for every day found."""
    if date and (start or end):
        raise ConfigError("use either --date or --start-date/--end-date, not both")
    if bool(start) != bool(end):
        raise ConfigError("--start-date and --end-date go together")
    first, last = (date, date) if date else (start, end)
    if not first:
        return None
    try:
        lo, hi = date_to_day(first), date_to_day(last)
    except ValueError:
        raise ConfigError(f"dates must be YYYY-MM-DD, got {first!r} / {last!r}") from None
    if hi < lo:
        raise ConfigError(f"--end-date {last} is before --start-date {first}")
    if hi - lo + 1 > MAX_DAYS:
        raise ConfigError(f"at most {MAX_DAYS} days at once, got {hi - lo + 1}")
    return frozenset(range(lo, hi + 1))
