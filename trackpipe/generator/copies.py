"""The copies: duplicates trackpipe must remove, and same-identity events it must keep.

Removed: exact copies (byte-identical: rotation overlap, re-uploads, webhook redelivery; or
written by another serializer), browser re-sends (time +0.1..2 s, some across midnight, with
nothing else of the session in between) and mobile re-sends (same time, later received_at),
some with third copies, some in another file or on another day. Kept: legit repeats (same
identity 10 s..2 h later), quick repeats (a learner submits the same answers again 1.2..4.5 s
later, after the browser's problem_graded for the first submission: identical but for time,
within the re-send window, yet a new action) and server/task events with the same identity
~1 s later. A copy goes to the file whose window holds its arrival; it
waits in ``pending`` until that file is written.
"""

from __future__ import annotations

import json
import random
from typing import TYPE_CHECKING

from trackpipe.generator.clock import SEC_US

if TYPE_CHECKING:
    from trackpipe.generator.event_templates.event_parts import RenderedEvent
    from trackpipe.generator.generate import CorpusGenerator

# ---------------------------------------------------------------------------------------------
# Rates: shares of the event lines that a file's originals produce.
# ---------------------------------------------------------------------------------------------
RATE_EXACT = 0.0165  # byte-identical copies (rotation overlap, re-uploads, webhook redelivery)
RATE_RESER = 0.0015  # exact copies written by another serializer
RATE_BRESEND = 0.0080  # browser re-sends, time +0.1..2 s
RATE_MRESEND = 0.0030  # mobile re-sends, same time, later received_at
RATE_REPEAT = 0.0020  # same identity 10 s..2 h later: NOT duplicates
RATE_NEAR = 0.0020  # server/task same identity ~1 s later: NOT duplicates
RATE_QREPEAT = 0.0020  # quick repeats after another action of the session (2 lines each): NOT duplicates

# The role of an original: which copy it gets (0: none).
EXACT, RESERIALIZED, BROWSER_RESEND, MOBILE_RESEND, REPEAT, NEAR, MIDNIGHT_RESEND, QUICK_REPEAT = range(1, 9)
# How long after its original a browser re-send can come (midnight re-sends included): no other
# event of the session may fall in that span, or the re-send would be a new action.
RESEND_SPAN_US = 3 * SEC_US


class Copies:
    """Writes each original's copy and sends it to the file it belongs in."""

    def __init__(self, gen: CorpusGenerator):
        self.gen = gen
        self.rnd, self.ri, self.pick, self.clock = gen.rnd, gen.ri, gen.pick, gen.clock
        self.prefix = gen.noise.prefix
        self.D, self.F, self.worker = gen.D, gen.F, gen.worker
        self.pending: dict[tuple[int, int], list] = {}
        self.intended = {"exact": [0, 0, 0, 0], "client_resend": [0, 0, 0, 0]}

    def emit(
        self,
        role: int,
        triple: bool,
        d: int,
        inst: int,
        we: int,
        day_end: int,
        o: RenderedEvent,
        a,
        t,
        sh,
        tfield,
        body,
        line,
        rec,
        u,
        sess,
    ):
        """The copies of one original of instance inst's file of day d (window ending at `we`):
        `o` rendered, arriving at `a` with time `t` in shape `sh`, written as `line` (its
        `body` after the prefix, `tfield` its time field); `rec` is its record; `u` and
        `sess` its user and session."""
        rnd, clock = self.rnd, self.clock
        ident, shape_code, tp, recv, s, stream, org, sk = rec
        if role == EXACT:  # exact, byte-identical
            for _ in range(2 if triple else 1):
                self._place(d, inst, a, line, rec, where=rnd.random())
                self.intended["exact"][s] += 1
        elif role == RESERIALIZED:  # exact, re-serialized
            self._place(d, inst, a, self.prefix(a, o, s) + _reserialize(body, rnd), rec, where=rnd.random() * 0.8 + 0.2)
            self.intended["exact"][s] += 1
        elif role in (BROWSER_RESEND, MIDNIGHT_RESEND):  # browser re-send(s): time +0.1..2 s, otherwise identical
            deltas = sorted(self.ri(100_000, 2_000_000) for _ in range(2 if triple else 1))
            if role == MIDNIGHT_RESEND:
                deltas = [day_end + self.ri(50_000, 1_000_000) - t]
            for dt_ in deltas:
                t2 = t + dt_
                tstr2, tp2 = clock.iso(t2, sh)
                b2 = o.tpl.replace("\x01", '"time": "' + tstr2 + '"')
                self.place_at(
                    d,
                    inst,
                    t2,
                    self.prefix(t2, o, s) + b2,
                    (ident, shape_code, tp2, -1, s, stream, org, sk),
                    other=rnd.random() < (0.5 if role == MIDNIGHT_RESEND else 0.25),
                )
                self.intended["client_resend"][s] += 1
        elif role == MOBILE_RESEND:  # mobile re-send: same time, later received_at
            p = rnd.random()
            lag = (self.ri(2, 60) if p < 0.4 else self.ri(60, 3600) if p < 0.8 else self.ri(3600, 6 * 3600)) * SEC_US + self.ri(1000) * 1000
            if d == self.D - 1:
                lag = max(SEC_US, min(lag, we - recv - 2 * SEC_US))
            recv2 = recv + lag
            b2 = o.tpl.replace("\x01", tfield).replace("\x02", clock.received(recv2))
            self.place_at(
                d, inst, recv2, self.prefix(recv2, o, s) + b2, (ident, shape_code, tp, recv2, s, stream, org, sk), other=rnd.random() < 0.3
            )
            self.intended["client_resend"][s] += 1
        elif role == REPEAT:  # legit repeat, same identity 10 s..2 h later
            gap = (self.ri(20 * 60, 40 * 60) if rnd.random() < 0.7 else self.ri(10, 7200)) * SEC_US
            t2 = t + gap + self.ri(SEC_US)
            if d == self.D - 1 and t2 >= we:  # the last file: repeat it earlier instead
                t2 = t - gap - self.ri(SEC_US)
            while self.gen.originals.in_span(u, t2):  # not inside a re-send of the user's session
                t2 += 11 * SEC_US if t2 > t else -11 * SEC_US
            self.gen.originals.line(u, t2)
            tstr2, tp2 = clock.iso(t2, sh)
            b2 = o.tpl.replace("\x01", '"time": "' + tstr2 + '"')
            self.place_at(d, inst, t2, self.prefix(t2, o, s) + b2, (ident, shape_code, tp2, -1, s, stream, org, sk), other=False)
        elif role == QUICK_REPEAT:  # the same answers submitted again, after the first one was graded
            gap = self.ri(1_200_000, 4_500_000)
            t_mid, t2 = t + gap // 3 + self.ri(gap // 3), t + gap
            self.gen.place_rendered(d, inst, t_mid, u, sess, "b_problem_graded", sh)
            self.gen.originals.book(0, u, t_mid)
            self.gen.originals.book(0, u, t2)
            tstr2, tp2 = clock.iso(t2, sh)
            b2 = o.tpl.replace("\x01", '"time": "' + tstr2 + '"')
            self.place_at(d, inst, t2, self.prefix(t2, o, s) + b2, (ident, shape_code, tp2, -1, s, stream, org, sk), other=False)
        elif role == NEAR:  # server/task event with the same identity ~1 s later: both stay
            t2 = t + self.ri(500_000, 1_500_000)
            self.gen.originals.line(u, t2)
            tstr2, tp2 = clock.iso(t2, sh)
            b2 = o.tpl.replace("\x01", tfield[: tfield.index(": ") + 3] + tstr2 + '"')
            self.place_at(d, inst, t2, self.prefix(t2, o, s) + b2, (ident, shape_code, tp2, -1, s, stream, org, sk), other=False)

    def _place(self, d, inst, key, line, rec, where: float):
        """An exact copy: another instance the same day, the same instance the next day
        (rotation overlap, re-upload), or the same file (a logger writing twice)."""
        if where >= 0.80:
            tgt = (d, inst)
        elif where >= 0.55 and d + 1 < self.D:
            tgt = (d + 1, inst)
        else:
            tgt = self._later_instance(d, inst)
            if tgt[0] == d and not self.clock.holds(tgt[1], d, key):  # keep within that file's hours
                tgt = (d, inst)
        self.pending.setdefault(tgt, []).append((key, line, rec))

    def _later_instance(self, d, inst):
        lms = [j for j in range(inst + 1, self.F) if j != self.worker]
        if lms:
            return d, self.pick(lms)
        if d + 1 < self.D:
            return d + 1, self.pick([j for j in range(self.F) if j != self.worker] or [inst])
        return d, inst

    def place_at(self, d, inst, arrival, line, rec, other: bool = False):
        """A later line: the file (this or a later instance) whose window holds its arrival."""
        tgt_inst = inst
        if other:
            lms = [j for j in range(inst + 1, self.F) if j != self.worker]
            if lms:
                tgt_inst = self.pick(lms)
                if not any(self.clock.holds(tgt_inst, dd, arrival) for dd in range(d, self.D)):
                    tgt_inst = inst
        dd = d
        while dd + 1 < self.D and arrival >= self.clock.window(tgt_inst, dd)[1]:
            dd += 1
        self.pending.setdefault((dd, tgt_inst), []).append((arrival, line, rec))


def _reserialize(body: str, rnd: random.Random) -> str:
    """The same event written by another serializer: other key order, raw UTF-8 instead of
    \\u escapes, escaped slashes, other separators. Parses to identical content."""
    obj = json.loads(body)
    items = list(obj.items())
    style = rnd.randrange(4)
    if style in (0, 2):
        items.reverse()
    else:
        rnd.shuffle(items)
    if isinstance(obj.get("context"), dict) and rnd.random() < 0.5:
        ctx = list(obj["context"].items())
        ctx.reverse()
        obj["context"] = dict(ctx)
        items = [(k, obj["context"] if k == "context" else v) for k, v in items]
    obj = dict(items)
    if style == 0:
        return json.dumps(obj, ensure_ascii=False)
    if style == 1:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).replace("/", "\\/")
    if style == 2:
        return json.dumps(obj, separators=(", ", ":")).replace("/", "\\/")
    return json.dumps(obj, ensure_ascii=False, indent=None, separators=(" ,", " : "))
