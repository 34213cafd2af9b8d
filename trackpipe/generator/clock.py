"""Time in the corpus: instants are integers, microseconds since the epoch (UTC).

The shapes a ``time`` field can take and how often each source uses them; the clock that
writes an instant in a shape (and says which instant the string parses back to), Segment's
``receivedAt`` and the log-line prefixes' fields; the days of the corpus: when each instance's
log rotates (a file holds the lines that arrived between two rotations, so it spans two
arrival days), and when lines arrive within a window (busier in the afternoon UTC).
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

DAY_US = 86_400_000_000
SEC_US = 1_000_000

HOURLY = np.array(
    [0.75, 0.7, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 1.25, 1.35, 1.4, 1.4, 1.35, 1.3, 1.2, 1.1, 1.0, 0.95, 0.85, 0.8]
)

# Time shapes: (has fraction, suffix, offset in minutes). An empty suffix is "no offset" (= UTC).
TIME_SHAPES = (
    (True, "+00:00", 0),  # 0 the usual
    (False, "+00:00", 0),  # 1
    (True, "Z", 0),  # 2
    (True, "", 0),  # 3 no offset = UTC
    (True, "+02:00", 120),  # 4
    (True, "-05:00", -300),  # 5
    (False, "Z", 0),  # 6
    (False, "+05:30", 330),  # 7
    (False, "", 0),  # 8
    (True, "-03:00", -180),  # 9
    (False, "+01:00", 60),  # 10
)
FRACTIONAL = np.array([s[0] for s in TIME_SHAPES])
SHAPE_P_SERVER = np.array([0.965, 0.010, 0.010, 0.005, 0.003, 0.003, 0.002, 0.0, 0.002, 0.0, 0.0])
SHAPE_P_MOBILE = np.array([0.25, 0.45, 0.10, 0.0, 0.04, 0.05, 0.0, 0.03, 0.0, 0.04, 0.04])


class Clock:
    """Writes instants as the strings events carry; knows each file's window of arrivals."""

    def __init__(self, start_day: int, rot: list[list[int]], npg: np.random.Generator):
        self._dates: dict[int, str] = {}
        self.start_us = start_day * DAY_US
        # rotation instants: seconds after midnight of the day after, per (instance, day)
        self.rot = rot
        self.npg = npg
        # per-second arrival weights over a day and its first 15 minutes of the next
        w = HOURLY[(np.arange(86400 + 900) // 3600) % 24]
        self._secw = w
        self._cum = np.concatenate(([0.0], np.cumsum(w)))

    # ----------------------------------------------------------------------------- strings
    def date(self, day: int) -> str:
        """YYYY-MM-DD of a day number (days since the epoch), cached."""
        s = self._dates.get(day)
        if s is None:
            s = self._dates[day] = (date(1970, 1, 1) + timedelta(days=day)).isoformat()
        return s

    def iso(self, us: int, shape: int) -> tuple[str, int]:
        """(time string, the instant it parses to) for the UTC instant `us`."""
        frac, suffix, off = TIME_SHAPES[shape]
        day, h, m, sec, f = self.hms(us + off * 60 * SEC_US)
        if frac:
            return f"{day}T{h:02d}:{m:02d}:{sec:02d}.{f:06d}{suffix}", us
        return f"{day}T{h:02d}:{m:02d}:{sec:02d}{suffix}", us - f

    def received(self, us: int) -> str:
        """Segment's receivedAt as the LMS writes it (millisecond precision); us is whole ms."""
        day, h, m, sec, f = self.hms(us)
        return f"{day}T{h:02d}:{m:02d}:{sec:02d}.{f:06d}+00:00"

    def hms(self, us: int) -> tuple[str, int, int, int, int]:
        """(YYYY-MM-DD, hours, minutes, seconds, microseconds) of the instant `us`."""
        s, f = divmod(us, SEC_US)
        d, sod = divmod(s, 86400)
        h, r = divmod(sod, 3600)
        m, sec = divmod(r, 60)
        return self.date(d), h, m, sec, f

    # ----------------------------------------------------------------------------- days
    def window(self, inst: int, d: int) -> tuple[int, int]:
        """[start, end) of the arrivals in instance inst's file of day d: rotation to rotation."""
        day0 = self.start_us + d * DAY_US
        ws = day0 + (self.rot[inst][d - 1] * SEC_US if d > 0 else 0)
        return ws, day0 + DAY_US + self.rot[inst][d] * SEC_US

    def arrivals(self, n: int, d: int, ws: int, we: int) -> np.ndarray:
        """n arrival instants in [ws, we), drawn by the hour of day's weight (one numpy draw)."""
        day0 = self.start_us + d * DAY_US
        a, b = (ws - day0) // SEC_US, (we - day0) // SEC_US
        cum = self._cum
        u = self.npg.uniform(cum[a], cum[b], n)
        idx = np.searchsorted(cum, u, side="right") - 1
        idx = np.clip(idx, a, b - 1)
        frac = np.clip((u - cum[idx]) / self._secw[idx], 0.0, 0.999999)
        return day0 + idx.astype(np.int64) * SEC_US + (frac * SEC_US).astype(np.int64)

    def holds(self, inst: int, d: int, arrival: int) -> bool:
        """Whether instance inst's file of day d holds a line that arrives at `arrival`."""
        ws, we = self.window(inst, d)
        return ws <= arrival < we
