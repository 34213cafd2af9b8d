"""ISO-8601 timestamps of tracking logs -> microseconds since the epoch, UTC. No Beam here.

Tracking logs carry `2016-08-04T13:43:34.967980+00:00` mostly, but also no fraction, `Z`,
other offsets, and no offset at all (2012-13 logs, meaning UTC). edX's own parser dropped the
offset; here every variant is converted to the same UTC instant.
"""

from __future__ import annotations

import datetime as _dt

_UTC = _dt.UTC
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_UTC)
US_PER_DAY = 86_400_000_000
# The instants a UTC date can name (0001-01-01 .. 9999-12-31); times outside are not times.
MIN_US = (_dt.datetime(1, 1, 1, tzinfo=_UTC) - _EPOCH) // _dt.timedelta(microseconds=1)
MAX_US = (_dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=_UTC) - _EPOCH) // _dt.timedelta(microseconds=1)


def parse_time_us(value) -> int | None:
    """Return the UTC instant of an ISO-8601 string in microseconds, or None if it is not one.

    Non-strings (numbers, null, objects) are not times: a number is ambiguous (seconds? ms?),
    so it is rejected rather than guessed. So is an instant whose UTC date would fall outside
    years 1-9999 (an offset can push `0001-01-01` or `9999-12-31` over the edge).
    """
    if not isinstance(value, str) or len(value) < 10 or len(value) > 40:
        return None
    try:
        parsed = _dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_UTC)
    delta = parsed - _EPOCH
    us = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if not MIN_US <= us <= MAX_US:
        return None  # `0001-01-01T00:00:00+14:00` is in year 0 in UTC: no date can hold it
    return us


def us_to_iso(us: int) -> str:
    """Microseconds since the epoch -> `YYYY-MM-DDTHH:MM:SS.ffffff+00:00` (for messages and JSON)."""
    return (_EPOCH + _dt.timedelta(microseconds=us)).isoformat()


def date_to_day(date: str) -> int:
    """`YYYY-MM-DD` -> days since the epoch (raises ValueError on a bad date)."""
    return (_dt.date.fromisoformat(date) - _EPOCH.date()).days


def day_to_date(day: int) -> str:
    """Days since the epoch -> `YYYY-MM-DD`."""
    return (_EPOCH.date() + _dt.timedelta(days=int(day))).isoformat()
