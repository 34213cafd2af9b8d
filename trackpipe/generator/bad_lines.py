"""The bad and blank lines: lines trackpipe must count and reject, by reason (see expected.py),
or count as blank. Their numbers are fixed shares of the corpus's event lines (on top of them),
each placed in a random file (by size) at a random arrival within it. Bad lines look like
what production holds: comments, lines cut at syslog's or an old logger's limit, a lost '{',
two writers on one line, JSON scalars, events without an event type or a time, or a bad time.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

from trackpipe.generator.event_families import BIG_FAMILIES, FAM
from trackpipe.generator.world import USERS

if TYPE_CHECKING:
    from trackpipe.generator.generate import CorpusGenerator

REJECT_REASONS = ("not_json", "not_an_object", "missing_event_type", "missing_time", "bad_time")
# Shares of all event lines of the corpus (bad lines come on top).
RATE_BAD = {  # (reason, flavour): share of N
    ("blank", "blank"): 0.0010,
    ("not_json", "comment"): 0.0004,
    ("not_json", "cut2043"): 0.0004,  # syslog's line limit
    ("not_json", "cut10000"): 0.0001,  # an old logger's
    ("not_json", "broken"): 0.00015,  # a '{' lost
    ("not_json", "concat"): 0.00015,  # two writers on one line
    ("not_an_object", "scalar"): 0.0003,
    ("missing_event_type", "stub"): 0.0002,
    ("missing_event_type", "event"): 0.0004,
    ("missing_time", "event"): 0.0005,
    ("bad_time", "event"): 0.0005,
}
COMMENTS = (
    "#",
    "# In this log file:",
    "#  Staff posts two topics",
    "# Seek backwards, seek forwards, pause in middle, pause at end.",
    "#  Enrollment events:",
    "# ---- rotated by logrotate ----",
    "# tracking.log restarted after deploy",
)
SCALARS = ("[1, 2, 3]", "42", '"tracking"', "[]", "3.14")  # valid JSON, not an object


class BadLines:
    """Places the bad and blank lines, writes them, and counts them."""

    def __init__(self, gen: CorpusGenerator):
        self.gen = gen
        self.rnd, self.pick, self.ri, self.clock = gen.rnd, gen.pick, gen.ri, gen.clock
        self.where = self._plan(gen.N, gen.plan, gen.npg)
        self.bad_counts = dict.fromkeys(REJECT_REASONS, 0)
        self.blank_count = 0

    @staticmethod
    def _plan(events: int, plan: list[list[int]], npg: np.random.Generator) -> dict[int, list[tuple[str, str]]]:
        """Bad and blank lines: fixed counts for the corpus, each placed in a random file."""
        kinds = []
        for kind, rate in RATE_BAD.items():
            k = int(round(events * rate))
            if events >= 1000:
                k = max(k, 1)
            kinds += [kind] * k
        sizes = np.array([n for day in plan for n in day], float) + 1.0
        where = npg.choice(len(sizes), size=len(kinds), p=sizes / sizes.sum()) if kinds else []
        per_file: dict[int, list[tuple[str, str]]] = {}
        for kind, f in zip(kinds, where):
            per_file.setdefault(int(f), []).append(kind)
        return per_file

    def add_to(self, fidx: int, ws: int, we: int, keys: list[int], lines: list[str]) -> None:
        """Append file fidx's bad and blank lines, arriving in its window ws..we, to its lines."""
        rnd = self.rnd
        for kind in self.where.get(fidx, ()):
            key = ws + int(rnd.random() * (we - ws))
            line = self.line(kind, key)
            keys.append(key)
            lines.append(line)

    def line(self, kind: tuple[str, str], key: int) -> str:
        """A bad or blank line of `kind` (reason, flavour) arriving at `key`, counted."""
        rnd = self.rnd
        reason, flavour = kind
        if reason == "blank":
            self.blank_count += 1
            return self.pick(("", "", "   ", "\t", "\x00\x00\x00\x00", " \r", ""))
        self.bad_counts[reason] += 1
        if reason == "not_an_object":
            return self.pick(SCALARS)
        if flavour == "comment":
            return self.pick(COMMENTS)
        if flavour == "cut2043":
            return self._long_body(2600, key)[:2043]
        if flavour == "cut10000":
            return self._long_body(12000, key)[:10000]
        if flavour == "broken":
            return self._bad_body(key).replace('"context": {', '"context": ', 1)
        if flavour == "concat":
            return self._bad_body(key) + self._bad_body(key)
        if flavour == "stub":
            return json.dumps({"username": self.pick(self.gen.w.usernames), "time": self.clock.iso(key, 0)[0]})
        obj = json.loads(self._bad_body(key))
        if reason == "missing_event_type":
            obj.pop("name", None)
            p = rnd.random()
            if p < 0.5:
                obj.pop("event_type", None)
            else:
                obj["event_type"] = "" if p < 0.8 else None
            return json.dumps(obj)
        if reason == "missing_time":
            obj.pop("time")
            return json.dumps(obj)
        if reason == "bad_time":
            obj["time"] = self.pick(("yesterday", 12345, "N/A", 1793620800))
            return json.dumps(obj)
        raise AssertionError(kind)

    def _bad_body(self, key: int) -> str:
        """A plausible event (server or browser) that is not counted as one."""
        fams = (FAM["s_implicit"], FAM["s_grades"], FAM["b_video"], FAM["b_seq"], FAM["s_enrollment"])
        f = self.pick(fams)
        u = self.ri(USERS)
        o = self.gen.renderers[f](u, f"{self.rnd.getrandbits(128):032x}", 0)
        return o.tpl.replace("\x01", '"time": "' + self.clock.iso(key, 0)[0] + '"')

    def _long_body(self, minimum: int, key: int) -> str:
        r = self.gen.renderers
        for _ in range(100):
            if minimum > 5000:
                o = r[FAM["b_problem_graded"]](self.ri(USERS), f"{self.rnd.getrandbits(128):032x}", 2)
            else:
                o = r[self.pick(BIG_FAMILIES)](self.ri(USERS), f"{self.rnd.getrandbits(128):032x}", 0)
            body = o.tpl.replace("\x01", '"time": "' + self.clock.iso(key, 0)[0] + '"')
            if len(body) >= minimum:
                return body
        raise RuntimeError("no long event")  # pragma: no cover
