"""The originals of one log file: how many, which families, when they arrive, in which time
shape, from which user and session, which ones carry a special payload, and which ones get
copies (and of which kind). All of it is drawn with numpy in a few batched calls; the event
lines themselves are rendered afterwards, one by one, in arrival order.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from trackpipe.generator.clock import DAY_US, FRACTIONAL, SEC_US, SHAPE_P_MOBILE, SHAPE_P_SERVER, TIME_SHAPES
from trackpipe.generator.copies import (
    BROWSER_RESEND,
    EXACT,
    MIDNIGHT_RESEND,
    MOBILE_RESEND,
    NEAR,
    QUICK_REPEAT,
    RATE_BRESEND,
    RATE_EXACT,
    RATE_MRESEND,
    RATE_NEAR,
    RATE_QREPEAT,
    RATE_REPEAT,
    RATE_RESER,
    REPEAT,
    RESEND_SPAN_US,
    RESERIALIZED,
)
from trackpipe.generator.event_families import FAM, FAM_SRC, FAM_W, FAMILIES, S_BROWSER, S_MOBILE, S_SERVER, S_TASK
from trackpipe.generator.world import USERS

if TYPE_CHECKING:
    from trackpipe.generator.generate import CorpusGenerator


class FileOriginals(NamedTuple):
    """One file's originals, as lists indexed like the draws, and the order to write them in."""

    order: list[int]
    fam: list[int]
    arr: list[int]
    src: list[int]
    shape: list[int]
    user: list[int]
    role: list[int]
    special: list[int]
    triple: list[bool]
    sessions: str
    day_end: int


class Originals:
    """Draws each file's originals, and keeps each user's client events apart."""

    def __init__(self, gen: CorpusGenerator):
        self.npg, self.ri, self.w, self.clock = gen.npg, gen.ri, gen.w, gen.clock
        self.D, self.worker = gen.D, gen.worker
        self.client_times = ({}, {})  # per-user sorted times of browser / mobile originals
        self.resend_spans: dict[int, list[int]] = {}  # per user: sorted times of browser originals with re-sends
        self.session_lines: dict[int, list[int]] = {}  # per user: sorted times of the user's web-session lines
        self._sess_day, self._sess = None, ""

    def _shapes(self, src: np.ndarray) -> np.ndarray:
        """The time shape of each event, by its source."""
        npg = self.npg
        return np.where(
            src == S_MOBILE,
            npg.choice(len(TIME_SHAPES), size=len(src), p=SHAPE_P_MOBILE),
            npg.choice(len(TIME_SHAPES), size=len(src), p=SHAPE_P_SERVER),
        )

    def draw(self, d: int, inst: int, n: int, ws: int, we: int) -> FileOriginals:
        """The originals of instance inst's file of day d, which must come to n event lines with
        their copies; ws..we is the file's window of arrivals."""
        npg, w, clock = self.npg, self.w, self.clock
        is_worker = inst == self.worker
        client = not is_worker
        # ---- how many lines of each kind this file's originals produce
        k_ex = int(round(n * RATE_EXACT))
        k_rs = int(round(n * RATE_RESER))
        k_br = int(round(n * RATE_BRESEND)) if client else 0
        k_mr = int(round(n * RATE_MRESEND)) if client else 0
        k_xm = 1 if client and n >= 400 else 0
        k_rp = int(round(n * RATE_REPEAT)) if client else 0
        k_nr = int(round(n * RATE_NEAR))
        k_qr = 2 * int(round(n * RATE_QREPEAT / 2)) if client else 0  # two lines per quick repeat
        ex_triple = k_ex // 11  # ~10% of exact groups have a third copy
        br_triple = k_br // 8  # ~15% of browser re-send groups too
        nb = n - (k_ex + k_rs + k_br + k_mr + k_xm + k_rp + k_nr + k_qr)
        # ---- originals
        if is_worker:
            famw = np.where(FAM_SRC == S_TASK, FAM_W, 0.0)
        elif self.worker >= 0:
            famw = np.where(FAM_SRC == S_TASK, 0.0, FAM_W)
        else:
            famw = FAM_W
        fam = npg.choice(len(FAMILIES), size=max(nb, 0), p=famw / famw.sum())
        arr = clock.arrivals(len(fam), d, ws, we)
        src = FAM_SRC[fam]
        shape = self._shapes(src)
        used = np.zeros(len(fam), bool)
        special = np.zeros(len(fam), np.int8)  # 1 timestamp, 2 big, 3 invalid UTF-8
        grades = np.flatnonzero(fam == FAM["s_grades"])
        special[grades[npg.random(len(grades)) < 0.02]] = 1
        graded = np.flatnonzero(fam == FAM["b_problem_graded"])
        special[graded[npg.random(len(graded)) < 0.03]] = 2
        forum = np.flatnonzero(fam == FAM["s_forum"])
        if len(forum) and n >= 1000:
            k = min(len(forum), 1 + n // 60000)
            special[npg.choice(forum, size=k, replace=False)] = 3
        used |= special > 0

        def pick(mask, k):
            cands = np.flatnonzero(mask & ~used)
            k = min(k, len(cands))
            if k <= 0:
                return np.zeros(0, np.int64)
            chosen = np.sort(npg.choice(cands, size=k, replace=False))
            used[chosen] = True
            return chosen

        frac_ok = FRACTIONAL[shape]
        if d == self.D - 1:  # no later file: later copies must still fit before the last rotation
            frac_ok = frac_ok & (arr < we - 3 * SEC_US)
        browser, mobile = src == S_BROWSER, src == S_MOBILE
        everything = np.ones(len(fam), bool)
        g_xm = pick(browser & frac_ok, k_xm)
        ex_groups = k_ex - ex_triple
        g_ex = pick(everything, ex_groups)
        g_rs = pick(everything, k_rs)
        g_br = pick(browser & frac_ok, k_br - br_triple)
        g_mr = pick(mobile & (arr < we - 3 * SEC_US), k_mr)
        g_rp = pick(fam == FAM["b_video"], k_rp)
        g_nr = pick(((src == S_SERVER) | (src == S_TASK)) & frac_ok, k_nr)
        g_qr = pick((fam == FAM["b_problem_check"]) & frac_ok & (arr < we - 5 * SEC_US), k_qr // 2)
        # lines not produced because there were too few candidates become more originals
        short = (
            (ex_groups - len(g_ex))
            + (k_rs - len(g_rs))
            + (k_br - br_triple - len(g_br))
            + (k_mr - len(g_mr))
            + (k_xm - len(g_xm))
            + (k_rp - len(g_rp))
            + (k_nr - len(g_nr))
            + (k_qr - 2 * len(g_qr))
        )
        n_ex_triple = min(ex_triple, len(g_ex))
        n_br_triple = min(br_triple, len(g_br))
        short += (ex_triple - n_ex_triple) + (br_triple - n_br_triple)
        if short > 0:
            extra = npg.choice(len(FAMILIES), size=short, p=famw / famw.sum())
            fam = np.concatenate((fam, extra))
            arr = np.concatenate((arr, clock.arrivals(short, d, ws, we)))
            esrc = FAM_SRC[extra]
            src = np.concatenate((src, esrc))
            shape = np.concatenate((shape, self._shapes(esrc)))
            special = np.concatenate((special, np.zeros(short, np.int8)))
        role = np.zeros(len(fam), np.int8)
        role[g_ex], role[g_rs], role[g_br], role[g_mr] = EXACT, RESERIALIZED, BROWSER_RESEND, MOBILE_RESEND
        role[g_rp], role[g_nr], role[g_xm], role[g_qr] = REPEAT, NEAR, MIDNIGHT_RESEND, QUICK_REPEAT
        triple = np.zeros(len(fam), bool)
        triple[g_ex[:n_ex_triple]] = True
        triple[g_br[:n_br_triple]] = True
        # cross-midnight re-sends: the original in the last 1.5 s of the day
        day_end = clock.start_us + (d + 1) * DAY_US
        for i in g_xm:
            arr[i] = day_end - self.ri(50_000, 1_500_000)
            shape[i] = 0
        order = np.argsort(arr, kind="stable")
        users = npg.choice(USERS, size=len(fam), p=w.user_p)
        sessions = npg.bytes(16 * USERS).hex() if d != self._sess_day else self._sess
        self._sess_day, self._sess = d, sessions
        return FileOriginals(
            order.tolist(),
            fam.tolist(),
            arr.tolist(),
            src.tolist(),
            shape.tolist(),
            users.tolist(),
            role.tolist(),
            special.tolist(),
            triple.tolist(),
            sessions,
            day_end,
        )

    def book(self, which: int, u: int, t: int) -> None:
        """Note a client event of user u at t that was placed on purpose (a quick repeat and the
        action before it), so later originals keep their distance from it too."""
        bisect.insort(self.client_times[which].setdefault(u, []), t)

    # A browser re-send is a re-send only with nothing else of its session in between, so the
    # span after a re-sent browser original is kept free of the user's other web-session lines
    # (server events share the session): a line checks the spans placed before it, a re-sent
    # original checks the lines placed before it.
    def line(self, u: int, t: int) -> None:
        """Note a web-session line of user u at t (any source but mobile)."""
        bisect.insort(self.session_lines.setdefault(u, []), t)

    def in_span(self, u: int, t: int, after: int = 0) -> bool:
        """Whether a line of u at some time in [t, t + after] falls in a re-send span: a span
        (t0, t0 + RESEND_SPAN_US] with t0 in [t - RESEND_SPAN_US, t + after)."""
        spans = self.resend_spans.get(u)
        if not spans:
            return False
        return bisect.bisect_left(spans, t + after) > bisect.bisect_left(spans, t - RESEND_SPAN_US)

    def session_user(self, u: int, t: int, after: int = 0) -> int:
        """The user of a server or task line at t (and up to `after` later, for its own
        near copy): u, unless that falls in one of u's re-send spans; then another user."""
        for _ in range(1000):
            if not self.in_span(u, t, after):
                self.line(u, t)
                return u
            u = self.ri(USERS)
        raise RuntimeError("could not place a server event")  # pragma: no cover

    def span_is_free(self, u: int, t: int) -> bool:
        """No web-session line of u lies in (t, t + RESEND_SPAN_US]."""
        lines = self.session_lines.get(u)
        if not lines:
            return True
        j = bisect.bisect_right(lines, t)
        return j == len(lines) or lines[j] > t + RESEND_SPAN_US

    def resent_user(self, u: int, t: int) -> int:
        """The user of a browser original at t that will be re-sent: like client_user, and
        with nothing else of the user's session in the span after t."""
        u = self.client_user(0, u, t, ok=lambda cand: self.span_is_free(cand, t))
        bisect.insort(self.resend_spans.setdefault(u, []), t)
        return u

    def client_user(self, which: int, u: int, t: int, ok=None) -> int:
        """Keep each user's browser (and mobile) events > 10 s apart, so no two originals of a
        client source can share an identity within the 5 s re-send window by accident (and,
        with `ok`, the user must pass that check too)."""
        book = self.client_times[which]
        for _ in range(1000):
            lst = book.get(u)
            if ok is not None and not ok(u):
                u = self.ri(USERS)
                continue
            if lst is None:
                book[u] = [t]
                return u
            j = bisect.bisect_left(lst, t)
            if (j == 0 or t - lst[j - 1] > 10 * SEC_US) and (j == len(lst) or lst[j] - t > 10 * SEC_US):
                lst.insert(j, t)
                return u
            u = self.ri(USERS)
        raise RuntimeError("could not place a client event")  # pragma: no cover
