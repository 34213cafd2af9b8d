"""Seeded generator of realistic, deliberately faulty raw Open edX tracking logs.

No public tool generates faulty raw edX logs, so trackpipe ships one. ``generate()`` writes
rotated, gzipped ``tracking.log`` files in edX's S3 layout and ``expected.json``: the exact
counts trackpipe must find in them (lines, blank lines, rejects by reason, duplicates removed
by kind and by source, kept rows per stream and arrival day, research rows per org and day).

The corpus imitates production (see /work/shared/TRACKING_LOGS.md): server, browser, mobile and
task events in edX's proportions, both course-key shapes, the places an org can hide, every
``time`` shape, log-line prefixes (Tutor, docker compose, rsyslog), NUL runs, CRLF endings, a
missing last newline, invalid UTF-8, late mobile uploads, files that hold two arrival days, an
empty file, and on top of that bad lines (~0.3%), blank lines (~0.1%) and duplicates (~3% of
event lines): exact copies (byte-identical and re-serialized), browser re-sends and mobile
re-sends, some with third copies, some split across files and across midnight, next to
same-identity events that are NOT duplicates (legit repeats, server events 1 s apart).

The package is laid out like Faker: this module is the small core, which seeds the random
streams, draws the shape of the corpus (world, instances, rotations, event lines per file),
lends its draws (``pick``, ``ri``, ``hx``, ``uuid``) to the providers and dispatches to them,
file by file. Each provider module holds one domain:

* world.py and vocabulary.py: orgs, courses and users, and the words events are made of;
* clock.py: time shapes, the days, rotation windows and arrivals;
* event_families.py and event_templates/ (server_events, browser_events, mobile_events,
  task_events on event_parts): the kinds of events, and one template provider per source;
* originals.py: each file's originals and which of them get copies; copies.py: the copies;
* line_noise.py: prefixes, CRLF, NUL runs; bad_lines.py: rejected and blank lines;
* log_files.py: the files and their gzip; expected.py: expected.json and the rules it follows.

Speed: lines are built from string templates (no per-event dicts, no json.dumps on the hot
path), random draws are batched with numpy, and each file is compressed in one pass with
isal (zlib's gzip as fallback). Same arguments give byte-identical files (gzip mtime 0, no
file name in the header); the stream of random numbers is that of ``random.Random`` and
numpy's PCG64, so bytes are stable for a given Python/numpy.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
from datetime import date
from hashlib import sha256
from pathlib import Path

import numpy as np

from trackpipe.generator.bad_lines import BadLines
from trackpipe.generator.clock import DAY_US, Clock
from trackpipe.generator.copies import BROWSER_RESEND, MIDNIGHT_RESEND, NEAR, Copies
from trackpipe.generator.event_families import FAM, FAM_SRC, FAM_STREAM, FAM_W, FAMILIES, S_BROWSER, S_MOBILE, S_TASK, SOURCES
from trackpipe.generator.event_templates.browser_events import BrowserEvents
from trackpipe.generator.event_templates.mobile_events import MobileEvents
from trackpipe.generator.event_templates.server_events import ServerEvents
from trackpipe.generator.event_templates.task_events import TaskEvents
from trackpipe.generator.expected import ExpectedCounts, session_of
from trackpipe.generator.line_noise import LineNoise
from trackpipe.generator.log_files import GROUP_CMS, GROUP_LMS, GROUP_WORKER, LogFiles
from trackpipe.generator.originals import Originals
from trackpipe.generator.world import World

__all__ = ["generate", "add_arguments"]

SHAPES = ("even", "production")
# The production shape: shares of the app servers' lines in the three big files, and in all the
# small ones together. The biggest file is written as plain text, like a live tracking.log
# synced next to the rotated ones.
PRODUCTION_BIG = (0.50, 0.20, 0.15)
PRODUCTION_SMALL = 0.15


class CorpusGenerator:
    """The core: the random streams, the corpus's shape, the draws the providers share, and
    the dispatch of each file's events to the providers."""

    def __init__(self, events: int, seed: int, days: int, files: int, start: date, shape: str = "even"):
        # the order of the draws here and in run_file() is the corpus: keep it
        self.N, self.seed, self.D, self.F, self.start, self.shape = events, seed, days, files, start, shape
        self.rnd = random.Random(seed)
        self._random = self.rnd.random
        self.npg = np.random.Generator(np.random.PCG64(seed))
        self.w = World(self.rnd, self.npg)
        self.start_day = (start - date(1970, 1, 1)).days
        self._hexbuf, self._hexpos = "", 0
        # instances: LMS app servers, plus a worker that writes the task events (if F >= 3)
        self.worker = files - 1 if files >= 3 else -1
        self.instances = []
        for i in range(files):
            group = GROUP_WORKER if i == self.worker else GROUP_LMS
            self.instances.append((group, f"i-0{self.rnd.getrandbits(64):016x}"))
        self.cms_instance = (GROUP_CMS, f"i-0{self.rnd.getrandbits(64):016x}")
        # rotation instants: seconds after midnight of the day after, per (instance, day)
        rot = [[self.ri(240, 840) for _ in range(days)] for _ in range(files)]
        self.clock = Clock(self.start_day, rot, self.npg)
        # event lines per (day, instance)
        self.plan = self._plan_lines()
        self.bad = BadLines(self)  # draws which files hold the bad and blank lines
        # the providers, which draw as the files are written
        templates = (ServerEvents(self), BrowserEvents(self), MobileEvents(self), TaskEvents(self))
        self.renderers = [getattr(templates[src], name) for name, src, _ in FAMILIES]  # by family
        self.noise = LineNoise(self)
        self.copies = Copies(self)
        self.originals = Originals(self)
        self.files = LogFiles(self)
        self.expected = ExpectedCounts(self)

    # ----------------------------------------------------------------------------- planning
    def _plan_lines(self) -> list[list[int]]:
        """Event lines per (day, instance): the day's share, the worker's by the task families'
        weight, the rest split over the LMS instances by random weights."""
        plan = []
        for d in range(self.D):
            n = self.N // self.D + (1 if d < self.N % self.D else 0)
            if self.worker >= 0:
                nw = int(round(n * FAM_W[FAM_SRC == S_TASK].sum() / FAM_W.sum()))
                lms = self.F - 1
            else:
                nw, lms = 0, self.F
            wts = np.array([0.8 + 0.4 * self.rnd.random() for _ in range(lms)])
            if self.shape == "production":  # a few big files, many small ones
                wts = np.array([*PRODUCTION_BIG] + [PRODUCTION_SMALL / (lms - 3)] * (lms - 3))
            split = _largest_remainder(n - nw, wts)
            if self.worker >= 0:
                split.append(nw)
            plan.append(split)
        return plan

    # ----------------------------------------------------------------------------- draws
    def pick(self, seq):
        """random.choice, without its overhead (this is the hot path)."""
        return seq[int(self._random() * len(seq))]

    def ri(self, a: int, b: int | None = None) -> int:
        """random.randrange(a) / randrange(a, b), without its overhead."""
        if b is None:
            return int(self._random() * a)
        return a + int(self._random() * (b - a))

    def hx(self, n: int = 32) -> str:
        """n random hex digits, cut from a buffer of random bytes refilled 64 KiB at a time."""
        p = self._hexpos
        if p + n > len(self._hexbuf):
            self._hexbuf, p = self.rnd.randbytes(65536).hex(), 0
        self._hexpos = p + n
        return self._hexbuf[p : p + n]

    def uuid(self) -> str:
        """A random UUID (version 4 shape) from hx()."""
        h = self.hx(32)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    # ----------------------------------------------------------------------------- one file
    def run_file(self, d: int, inst: int, out: Path) -> None:
        """Write instance inst's file of day d: its originals, each rendered by its family's
        template, and their copies; the copies earlier files sent to it; its bad lines."""
        rnd, w, clock = self.rnd, self.w, self.clock
        ws, we = clock.window(inst, d)
        orig = self.originals.draw(d, inst, self.plan[d][inst], ws, we)
        fam_l, arr_l, src_l, shape_l, users_l = orig.fam, orig.arr, orig.src, orig.shape, orig.user
        role_l, special_l, triple_l = orig.role, orig.special, orig.triple
        sessions, day_end = orig.sessions, orig.day_end
        renders, record, prefix = self.renderers, self.expected.record, self.noise.prefix
        client_user, emit = self.originals.client_user, self.copies.emit
        resent_user, session_user = self.originals.resent_user, self.originals.session_user
        keys: list[int] = []
        lines: list[str] = []
        for i in orig.order:
            f, a, s, sh = fam_l[i], arr_l[i], src_l[i], shape_l[i]
            u = users_l[i]
            if s == S_MOBILE:
                recv = a - a % 1000
                if rnd.random() < 0.05:  # late upload: device clock days behind the arrival
                    t = recv - self.ri(DAY_US, 3 * DAY_US)
                else:
                    t = recv - int(rnd.lognormvariate(14.5, 1.2)) - 200_000
                u = client_user(1, u, t)
            else:
                recv = -1
                t = a
                if s == S_BROWSER:
                    u = resent_user(u, t) if role_l[i] in (BROWSER_RESEND, MIDNIGHT_RESEND) else client_user(0, u, t)
                else:  # server and task lines share the user's web session
                    u = session_user(u, t, after=1_500_000 if role_l[i] == NEAR else 0)
            sess = sessions[32 * u : 32 * u + 32]
            o = renders[f](u, sess, special_l[i])
            tstr, tp = clock.iso(t, sh)
            ts = special_l[i] == 1
            tfield = ('"timestamp": "' if ts else '"time": "') + tstr + '"'
            body = o.tpl.replace("\x01", tfield)
            if recv >= 0:
                body = body.replace("\x02", clock.received(recv))
            ident = sha256(o.tpl.encode("utf-8", "surrogateescape")).digest()[:16]
            org = -1 if o.org is None else w.org_index[o.org]
            stream = FAM_STREAM[f]
            shape_code = sh + (32 if ts else 0)
            line = prefix(a, o, s) + body
            sk = session_of(o.tpl)
            record(ident, shape_code, tp, recv, s, stream, org, sk)
            keys.append(a)
            lines.append(line)
            r = role_l[i]
            if r == 0:
                continue
            emit(
                r,
                triple_l[i],
                d,
                inst,
                we,
                day_end,
                o,
                a,
                t,
                sh,
                tfield,
                body,
                line,
                (ident, shape_code, tp, recv, s, stream, org, sk),
                u,
                sess,
            )
        # ---- copies planned for this file by earlier files (and by itself)
        for key, line, rec in self.copies.pending.pop((d, inst), ()):
            record(*rec)
            keys.append(key)
            lines.append(line)
        # ---- bad and blank lines
        self.bad.add_to(d * self.F + inst, ws, we, keys, lines)
        self.files.write(d, inst, keys, lines, out)

    def place_rendered(self, d: int, inst: int, t: int, u: int, sess: str, family: str, sh: int) -> None:
        """A browser line of family `family` from user u in session `sess` at time t, rendered
        and sent to the file whose window holds it (the action between a quick repeat and its
        first submission)."""
        f = FAM[family]
        o = self.renderers[f](u, sess, 0)
        tstr, tp = self.clock.iso(t, sh)
        body = o.tpl.replace("\x01", '"time": "' + tstr + '"')
        ident = sha256(o.tpl.encode("utf-8", "surrogateescape")).digest()[:16]
        org = -1 if o.org is None else self.w.org_index[o.org]
        rec = (ident, sh, tp, -1, FAM_SRC[f], FAM_STREAM[f], org, session_of(o.tpl))
        self.copies.place_at(d, inst, t, self.noise.prefix(t, o, FAM_SRC[f]) + body, rec)


def _largest_remainder(total: int, weights: np.ndarray) -> list[int]:
    raw = weights / weights.sum() * total
    base = np.floor(raw).astype(int)
    rest = total - int(base.sum())
    for i in np.argsort(-(raw - base), kind="stable")[:rest]:
        base[i] += 1
    return base.tolist()


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------
def _generate(
    out: str, events: int, seed: int, days: int = 1, files: int = 8, start_date: str = "2026-11-02", shape: str = "even"
) -> tuple[dict, dict]:
    if events < 0 or days < 1 or files < 1:
        raise ValueError("events must be >= 0, days and files >= 1")
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {', '.join(SHAPES)}")
    if shape == "production" and files < 5:
        raise ValueError("the production shape needs --files 5 or more (3 big files, small ones, a worker)")
    start = date.fromisoformat(start_date)
    root = Path(out)
    logs = root / "logs"
    if logs.exists() and any(logs.iterdir()):
        try:
            previous = json.loads((root / "expected.json").read_text())
        except (OSError, ValueError):
            previous = None
        if not (isinstance(previous, dict) and "generator" in previous):
            raise FileExistsError(f"{logs} exists and was not written by trackpipe generate")
        shutil.rmtree(logs)  # an earlier generated corpus: replace it whole
    root.mkdir(parents=True, exist_ok=True)
    g = CorpusGenerator(events, seed, days, files, start, shape)
    for d in range(days):
        for inst in range(files):
            g.run_file(d, inst, root)
    g.files.write_empty(root)
    assert not g.copies.pending, "copies left unplaced"
    exp = g.expected.counts()
    tmp = root / "expected.json.tmp"
    tmp.write_text(json.dumps(exp, indent=1) + "\n")
    os.replace(tmp, root / "expected.json")
    intended = {k: {SOURCES[i]: v[i] for i in range(4)} for k, v in g.copies.intended.items()}
    return exp, intended


def generate(out: str, events: int, seed: int, days: int = 1, files: int = 8, start_date: str = "2026-11-02", shape: str = "even") -> dict:
    """Write a faulty raw tracking-log corpus under `out` and `out/expected.json`; return the
    expected counts. Same arguments give byte-identical files. A previous generated corpus in
    `out` is replaced; any other non-empty `out/logs` is refused (FileExistsError)."""
    return _generate(out, events, seed, days, files, start_date, shape)[0]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of `trackpipe generate` to `parser`."""
    parser.add_argument(
        "--events",
        type=int,
        required=True,
        help="event lines to write in total (duplicates included); bad and blank lines (~0.4%%) come on top",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same arguments give byte-identical files (default: 0)")
    parser.add_argument(
        "--out",
        required=True,
        help="output folder: logs go to OUT/logs/tracking/<server-group>/<instance>/"
        "tracking.log-YYYYMMDD-<epoch>.gz, the exact counts to OUT/expected.json",
    )
    parser.add_argument("--days", type=int, default=1, help="consecutive days of traffic, starting at --start-date (default: 1)")
    parser.add_argument(
        "--files",
        type=int,
        default=8,
        help="rotated log files per day, one per app server instance; with 3 or more, "
        "the last one is a celery worker holding the task events (default: 8)",
    )
    parser.add_argument(
        "--shape",
        choices=SHAPES,
        default="even",
        help="how lines spread over the files: even (similar sizes, all gzip), or production (the biggest file "
        "holds about half the lines and is plain text, two more hold a third, the rest are small gzip files; "
        "needs --files 5 or more) (default: even)",
    )
    parser.add_argument(
        "--start-date",
        default="2026-11-02",
        help="first day of traffic, YYYY-MM-DD; files are named by their rotation date, the day after (default: 2026-11-02)",
    )
