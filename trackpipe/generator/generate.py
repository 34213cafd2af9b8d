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

Rules the expected counts follow (trackpipe's contract):

* Blank line: empty after removing NUL bytes and whitespace. Otherwise the JSON is taken from
  the first ``{`` to the last ``}`` (after stripping NULs). Rejects: ``not_json``,
  ``not_an_object`` (no ``{`` but valid JSON), ``missing_event_type`` (no non-empty string
  ``event_type`` or ``name``), ``missing_time`` (no ``time``/``timestamp``), ``bad_time``.
* time = ``time``, else ``timestamp``; no offset means UTC. received_at =
  ``context.received_at`` if present and parseable, else time. Arrival day = UTC date of
  received_at. Stream ``internal_bi`` if the name (``name``, else ``event_type``) starts with
  ``edx.bi.``, else ``research``.
* Identity = parsed content without the time field and ``context.received_at``. Exact copies
  (identical content, time included) are removed whatever the source; then a browser/mobile
  event whose time is within 5 s of the kept copy of its identity is a ``client_resend``. Kept
  copy = earliest by (received_at, time).

The expected counts are not bookkeeping of what was meant to be injected: every event line
carries a fingerprint of its identity (sha256 of the line rendered without its time fields),
and the rules above are applied to those fingerprints after writing, so the numbers stay
exact even if two independently drawn events happened to collide. ``_generate()`` also returns
what was injected on purpose; the tests check that both agree (no accidental duplicates).

Speed: lines are built from string templates (no per-event dicts, no json.dumps on the hot
path), random draws are batched with numpy, and each file is compressed in one pass with
isal (zlib's gzip as fallback). Same arguments give byte-identical files (gzip mtime 0, no
file name in the header); the stream of random numbers is that of ``random.Random`` and
numpy's PCG64, so bytes are stable for a given Python/numpy.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import random
import shutil
from array import array
from datetime import date, timedelta
from hashlib import sha256
from pathlib import Path

import numpy as np
import orjson

try:  # isal is ~4x faster than zlib at gzip; the output is a standard gzip member either way
    from isal import igzip as _igzip
except ImportError:  # pragma: no cover - isal is a pinned runtime dependency
    _igzip = None
import gzip as _gzip

__all__ = ["generate", "add_arguments"]

DAY_US = 86_400_000_000
SEC_US = 1_000_000
RESEND_WINDOW_US = 5 * SEC_US
SOURCES = ("server", "browser", "mobile", "task")
S_SERVER, S_BROWSER, S_MOBILE, S_TASK = range(4)
STREAMS = ("research", "internal_bi")
REJECT_REASONS = ("not_json", "not_an_object", "missing_event_type", "missing_time", "bad_time")

SITE_HOST = "courses.edx.org"
LMS = "https://courses.edx.org"
MFE = "https://learning.edx.org"
GROUP_LMS, GROUP_WORKER, GROUP_CMS = "prod-edx-edxapp-lms", "prod-edx-worker", "prod-edx-edxapp-cms"

# ---------------------------------------------------------------------------------------------
# Rates. Event-line rates are shares of the event lines that a file's originals produce;
# bad-line rates are shares of all event lines of the corpus (bad lines come on top).
# ---------------------------------------------------------------------------------------------
RATE_EXACT = 0.0165  # byte-identical copies (rotation overlap, re-uploads, webhook redelivery)
RATE_RESER = 0.0015  # exact copies written by another serializer
RATE_BRESEND = 0.0080  # browser re-sends, time +0.1..2 s
RATE_MRESEND = 0.0030  # mobile re-sends, same time, later received_at
RATE_REPEAT = 0.0020  # same identity 10 s..2 h later: NOT duplicates
RATE_NEAR = 0.0020  # server/task same identity ~1 s later: NOT duplicates
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
USERS, COURSES = 50_000, 200

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

ORGS = (
    ("MITx", 14),
    ("HarvardX", 12),
    ("edX", 6),
    ("DelftX", 6),
    ("BerkeleyX", 5),
    ("UQx", 4),
    ("TUMx", 3),
    ("ColumbiaX", 4),
    ("IBM", 5),
    ("Microsoft", 5),
    ("LinuxFoundationX", 4),
    ("UBCx", 3),
    ("CornellX", 3),
    ("GTx", 3),
    ("UCSanDiegoX", 3),
    ("EPFLx", 3),
    ("KULeuvenX", 2),
    ("HKUSTx", 2),
    ("StanfordOnline", 4),
    ("W3Cx", 2),
    ("AdelaideX", 1),
    ("IMFx", 2),
)
SUBJECTS = (
    "CS",
    "6.00",
    "PH",
    "DS",
    "ENG",
    "BIO",
    "FIN",
    "MATH",
    "STAT",
    "ECON",
    "LAW",
    "CHEM",
    "EE",
    "ME",
    "PY",
    "AI",
    "HIST",
    "ARCH",
    "MGMT",
    "LFS",
)
# Display names, some with non-ASCII (written \u-escaped, as json.dumps does).
DISPLAY = (
    "Problem Set {n}",
    "Lecture {n}: Overview",
    "Homework {n}",
    "Quiz {n}",
    "Exercise {n}",
    "Finger Exercise {n}",
    "Introducci\u00f3n {n}",
    "\u00dcbung {n}",
    "R\u00e9sum\u00e9 {n}",
    "\u00c9valuation {n}",
    "Lab {n}",
    "Midterm Exam Part {n}",
    "Knowledge Check {n}",
    "Video {n}: Worked Example",
    "Problema {n}: Se\u00f1ales",
)
FORUM_TITLES = (
    "Question about problem {n}",
    "Stuck on homework {n}",
    "Typo in lecture {n}?",
    "Grading of quiz {n}",
    "Pr\u00e9sentation - groupe {n}",
    "\u00bfAlguien m\u00e1s tiene problemas con la tarea {n}?",
    "Study group {n}",
    "Why is my answer to {n} marked wrong",
    "Great course! Week {n}",
    "Deadline extension for assignment {n}?",
)
FORUM_TEXT = (
    "I tried the approach from the lecture but the grader says my answer is incorrect. ",
    "Could someone explain why the second part uses the derivative here? ",
    "Here is my reasoning: first compute the mean, then the variance. ",
    "The video at minute 4 says something different from the notes. ",
    "Merci pour ce cours, tr\u00e8s int\u00e9ressant. ",
    "Thanks everyone, I figured it out after re-reading the problem statement. ",
    "def f(x):\n    return x * 2\n",
    "Is the exam open book? ",
    "My code works locally but the autograder times out. ",
)
ANSWER_TEXT = (
    "The answer is 42 because the sum converges. ",
    "x = 3.5, y = -2 ",
    "I think it is the second option since the current divides equally. ",
    "Energy is conserved so the velocity at the bottom is sqrt(2gh). ",
    "The algorithm runs in O(n log n) time. ",
)
FIRST = (
    "james",
    "maria",
    "wei",
    "ana",
    "john",
    "li",
    "fatima",
    "carlos",
    "priya",
    "olga",
    "ahmed",
    "sofia",
    "david",
    "yuki",
    "emma",
    "luis",
    "chen",
    "sara",
    "ivan",
    "nina",
    "omar",
    "lucas",
    "mei",
    "paul",
    "aisha",
    "diego",
    "hana",
    "peter",
    "zara",
    "tom",
    "julia",
    "raj",
    "elena",
    "kofi",
    "laura",
    "mohamed",
    "anna",
    "felix",
    "amara",
    "noah",
)
LAST = (
    "smith",
    "garcia",
    "wang",
    "kim",
    "muller",
    "rossi",
    "silva",
    "khan",
    "nguyen",
    "patel",
    "lopez",
    "chen",
    "ivanova",
    "sato",
    "brown",
    "martin",
    "okafor",
    "hansen",
    "novak",
    "santos",
    "cohen",
    "dubois",
    "yilmaz",
    "kowalski",
    "tanaka",
    "jones",
    "ali",
    "berg",
    "costa",
    "fischer",
)
AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0.0.0 Safari/537.36 Edg/141.0.0.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.6 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:145.0) Gecko/20100101 Firefox/145.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:144.0) Gecko/20100101 Firefox/144.0",
    "Mozilla/5.0 (Linux; Android 14; SM-A546B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.7 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/139.0.0.0 Safari/537.36 OPR/124.0.0.0",
    "Mozilla/5.0 (X11; CrOS x86_64 16328.65.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0.0.0 Safari/537.36",
)
LANGS = (
    "en-US,en;q=0.9",
    "en-GB,en;q=0.9",
    "es-ES,es;q=0.9,en;q=0.8",
    "fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7",
    "de-DE,de;q=0.9,en;q=0.8",
    "zh-CN,zh;q=0.9",
    "pt-BR,pt;q=0.9,en-US;q=0.8,en;q=0.7",
    "hi-IN,hi;q=0.9,en-IN;q=0.8,en;q=0.7",
    "ar,en-US;q=0.9,en;q=0.8",
    "en-US,en;q=0.5",
    "ja,en-US;q=0.9,en;q=0.8",
)
ANDROIDS = (
    ("SM-A546B", "a54x", "samsung", "14", 34),
    ("Pixel 8", "shiba", "Google", "15", 35),
    ("Redmi Note 12", "tapas", "Xiaomi", "13", 33),
    ("moto g54 5G", "cancunf", "motorola", "14", 34),
)
IPHONES = (("iPhone15,2", "18.1"), ("iPhone14,5", "17.6.1"), ("iPhone16,1", "18.2"), ("iPad13,18", "17.7"))
CARRIERS = ("T-Mobile", "Verizon", "Vodafone", "Airtel", "Jio", "Orange", "Claro", "MTN", "")
TIMEZONES = (
    "America/New_York",
    "Europe/Madrid",
    "Asia/Kolkata",
    "America/Sao_Paulo",
    "Africa/Lagos",
    "Asia/Shanghai",
    "Europe/London",
    "America/Los_Angeles",
)
COMMENTS = (
    "#",
    "# In this log file:",
    "#  Staff posts two topics",
    "# Seek backwards, seek forwards, pause in middle, pause at end.",
    "#  Enrollment events:",
    "# ---- rotated by logrotate ----",
    "# tracking.log restarted after deploy",
)


def _q(s: str) -> str:
    """JSON string literal, ASCII-only, the way edx-platform's json.dumps writes it."""
    return json.dumps(s)


# ---------------------------------------------------------------------------------------------
# Families. Weights are percent of all events (server ~55, browser ~35, mobile ~7, task ~3,
# of which edx.bi.* ~2).
# ---------------------------------------------------------------------------------------------
FAMILIES = (
    # name, source, weight
    ("s_implicit", S_SERVER, 32.0),
    ("s_implicit_noorg", S_SERVER, 5.0),
    ("s_problem_check", S_SERVER, 4.5),
    ("s_grades", S_SERVER, 6.0),
    ("s_enrollment", S_SERVER, 2.0),
    ("s_forum", S_SERVER, 3.0),
    ("s_misc", S_SERVER, 1.7),
    ("s_bi", S_SERVER, 0.8),
    ("b_video", S_BROWSER, 15.0),
    ("b_problem_check", S_BROWSER, 2.0),
    ("b_problem_graded", S_BROWSER, 0.6),
    ("b_problem_show", S_BROWSER, 0.4),
    ("b_seq", S_BROWSER, 6.0),
    ("b_link", S_BROWSER, 2.0),
    ("b_outline", S_BROWSER, 1.5),
    ("b_page_close", S_BROWSER, 5.2),
    ("b_resume", S_BROWSER, 1.5),
    ("b_bi", S_BROWSER, 0.8),
    ("m_video", S_MOBILE, 6.6),
    ("m_bi", S_MOBILE, 0.4),
    ("t_grades", S_TASK, 3.0),
)
FAM_NAMES = tuple(f[0] for f in FAMILIES)
FAM_SRC = np.array([f[1] for f in FAMILIES])
FAM_W = np.array([f[2] for f in FAMILIES])
FAM = {name: i for i, name in enumerate(FAM_NAMES)}
FAM_STREAM = tuple(1 if name.endswith("_bi") else 0 for name in FAM_NAMES)  # the *_bi families emit edx.bi.*
BIG_FAMILIES = (FAM["s_problem_check"], FAM["s_forum"])


class _Course:
    __slots__ = (
        "key",
        "org",
        "v1",
        "code",
        "run",
        "lms",
        "mfe",
        "chapters",
        "seqs",
        "verticals",
        "problems",
        "videos",
        "discussions",
        "version",
    )


class _World:
    """Orgs, courses (with their blocks) and users, drawn once from the seed."""

    def __init__(self, rnd: random.Random, npg: np.random.Generator):
        self.rnd = rnd
        orgs = [o for o, _ in ORGS]
        ow = np.array([w for _, w in ORGS], float)
        self.orgs = orgs
        self.org_index = {o: i for i, o in enumerate(orgs)}
        cw = 1.0 / np.arange(1, COURSES + 1) ** 0.9
        self.course_p = cw / cw.sum()
        # ~15% of the traffic (and of the courses) on old Org/Course/Run keys: old runs are
        # never the most popular ones, so pick them among the smaller courses
        old = set()
        share = 0.0
        for k in npg.permutation(COURSES).tolist():
            if share >= 0.15:
                break
            if self.course_p[k] < 0.012:
                old.add(k)
                share += self.course_p[k]
        self.courses = [
            self._course(rnd, orgs[i], k not in old) for k, i in enumerate(npg.choice(len(orgs), size=COURSES, p=ow / ow.sum()).tolist())
        ]
        # users
        names, seen = [], set()
        while len(names) < USERS:
            f, last = rnd.choice(FIRST), rnd.choice(LAST)
            p = rnd.random()
            if p < 0.35:
                n = f"{f}{last}{rnd.randrange(100)}"
            elif p < 0.55:
                n = f"{f}_{last}"
            elif p < 0.75:
                n = f"{f[0]}{last}{rnd.randrange(10000)}"
            elif p < 0.9:
                n = f"{f}.{last}{rnd.randrange(1000)}"
            else:
                n = f"learner_{rnd.getrandbits(32):08x}"
            if n not in seen:
                seen.add(n)
                names.append(n)
        self.usernames = names
        self.user_ids = [str(x) for x in (np.sort(npg.choice(45_000_000, size=USERS, replace=False)) + 1000)]
        npg.shuffle(self.user_ids)
        self.ips = [f"{rnd.randrange(11, 223)}.{rnd.randrange(256)}.{rnd.randrange(256)}.{rnd.randrange(1, 255)}" for _ in range(USERS)]
        self.agent = npg.integers(0, len(AGENTS), USERS).tolist()
        self.lang = npg.integers(0, len(LANGS), USERS).tolist()
        self.user_courses = npg.choice(COURSES, size=(USERS, 3), p=self.course_p).tolist()
        w = npg.lognormal(0.0, 0.8, USERS)
        self.user_p = w / w.sum()
        self.agents_q = [_q(a) for a in AGENTS]
        self.langs_q = [_q(a) for a in LANGS]
        self._mobile = {}

    @staticmethod
    def _course(rnd: random.Random, org: str, v1: bool) -> _Course:
        c = _Course()
        c.org = org
        c.v1 = v1
        subj = rnd.choice(SUBJECTS)
        c.code = f"{subj}{rnd.randrange(1, 999)}{rnd.choice(('x', '.1x', '.2x', 'x', 'X'))}"
        if c.v1:
            c.run = rnd.choice(("1T2026", "2T2026", "3T2026", "3T2026", "2026_T2", "1T2027"))
            c.key = f"course-v1:{org}+{c.code}+{c.run}"
        else:
            c.run = rnd.choice(("2013_Spring", "2014_Fall", "2T2015", "3T2016", "1T2017", "Fall_2013"))
            c.key = f"{org}/{c.code}/{c.run}"
        c.lms = f"{LMS}/courses/{c.key}"
        c.mfe = f"{MFE}/course/{c.key}"
        hx = lambda: f"{rnd.getrandbits(128):032x}"  # noqa: E731
        c.chapters = [hx() for _ in range(rnd.randrange(6, 13))]
        c.seqs = [(ch, hx()) for ch in c.chapters for _ in range(rnd.randrange(3, 6))]
        c.verticals = [(si, hx()) for si in range(len(c.seqs)) for _ in range(rnd.randrange(2, 5))]
        c.problems = []
        for i in range(rnd.randrange(20, 45)):
            h = hx()
            c.problems.append((h, _block_key(c, "problem", h), _q(rnd.choice(DISPLAY).format(n=i + 1))))
        c.videos = []
        for _ in range(rnd.randrange(12, 35)):
            h = hx()
            vid = h if c.v1 else f"i4x-{org}-{c.code.replace('.', '_')}-video-{h}"
            yt = "".join(rnd.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") for _ in range(11))
            c.videos.append((h, vid, _block_key(c, "video", h), yt, rnd.randrange(180, 1500)))
        c.discussions = [f"{rnd.getrandbits(160):040x}" for _ in range(rnd.randrange(4, 12))]
        c.version = f"{rnd.getrandbits(96):024x}"
        return c

    def mobile_client(self, u: int) -> tuple[str, str, str]:
        """(agent JSON, application JSON, client JSON) of user u's phone."""
        m = self._mobile.get(u)
        if m is not None:
            return m
        r = random.Random(u * 7919 + 17)  # per-user, independent of draw order
        tz = r.choice(TIMEZONES)
        if u % 5 < 3:
            model, dev, man, osv, sdk = r.choice(ANDROIDS)
            ver = r.choice(("5.1.2", "5.0.4", "4.9.0"))
            agent = f"Dalvik/2.1.0 (Linux; U; Android {osv}; {model} Build/UP1A.231005.007)"
            app = f'{{"name": "edx.mobileapp.android", "version": "{ver}"}}'
            client = (
                f'{{"network": {{"wifi": {r.choice(("true", "false"))}, "carrier": "{r.choice(CARRIERS)}", '
                f'"cellular": {r.choice(("true", "false"))}, "bluetooth": false}}, "locale": "en-US", '
                f'"app": {{"name": "edX", "packageName": "org.edx.mobile", "version": "{ver}", '
                f'"build": "org.edx.mobile@{ver.replace(".", "")}", "versionName": "{ver}", '
                f'"versionCode": {ver.replace(".", "")}}}, "library": {{"version": 4113, '
                f'"name": "analytics-android", "versionName": "4.11.3"}}, "device": {{"model": "{model}", '
                f'"type": "android", "id": "{r.getrandbits(64):016x}", "name": "{dev}", '
                f'"manufacturer": "{man}"}}, "os": {{"version": "{osv}", "name": "Android", "sdk": {sdk}}}, '
                f'"screen": {{"densityBucket": "xxhdpi", "density": 3, "height": 2340, "width": 1080, '
                f'"densityDpi": 480, "scaledDensity": 3}}, "timezone": "{tz}", "userAgent": "{agent}"}}'
            )
        else:
            model, osv = r.choice(IPHONES)
            ver = r.choice(("5.4.0", "5.3.1", "5.2.0"))
            agent = f"edX/{ver} (iPhone; iOS {osv}; Scale/3.00)"
            app = f'{{"name": "edx.mobileapp.iOS", "version": "{ver}"}}'
            client = (
                f'{{"app": {{"name": "edX", "version": "{ver}", "build": "{ver}.1", '
                f'"namespace": "org.edx.mobile"}}, "device": {{"id": "{_uuid(r)}", "manufacturer": "Apple", '
                f'"model": "{model}", "type": "ios", "name": "iPhone"}}, "library": {{"name": "analytics-ios", '
                f'"version": "4.1.8"}}, "locale": "en-US", "network": {{"carrier": "{r.choice(CARRIERS)}", '
                f'"cellular": false, "wifi": true}}, "os": {{"name": "iOS", "version": "{osv}"}}, '
                f'"screen": {{"height": 852, "width": 393}}, "timezone": "{tz}", "traits": {{}}}}'
            )
        m = self._mobile[u] = (_q(agent), app, client)
        return m


def _block_key(c: _Course, kind: str, h: str) -> str:
    if c.v1:
        return f"block-v1:{c.org}+{c.code}+{c.run}+type@{kind}+block@{h}"
    return f"i4x://{c.org}/{c.code}/{kind}/{h}"


def _uuid(r: random.Random) -> str:
    h = f"{r.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


# ---------------------------------------------------------------------------------------------
# Time formatting
# ---------------------------------------------------------------------------------------------
class _Clock:
    def __init__(self):
        self._dates: dict[int, str] = {}

    def date(self, day: int) -> str:
        s = self._dates.get(day)
        if s is None:
            s = self._dates[day] = (date(1970, 1, 1) + timedelta(days=day)).isoformat()
        return s

    def iso(self, us: int, shape: int) -> tuple[str, int]:
        """(time string, the instant it parses to) for the UTC instant `us`."""
        frac, suffix, off = TIME_SHAPES[shape]
        loc = us + off * 60 * SEC_US
        s, f = divmod(loc, SEC_US)
        d, sod = divmod(s, 86400)
        h, r = divmod(sod, 3600)
        m, sec = divmod(r, 60)
        if frac:
            return f"{self.date(d)}T{h:02d}:{m:02d}:{sec:02d}.{f:06d}{suffix}", us
        return f"{self.date(d)}T{h:02d}:{m:02d}:{sec:02d}{suffix}", us - f

    def received(self, us: int) -> str:
        """Segment's receivedAt as the LMS writes it (millisecond precision); us is whole ms."""
        s, f = divmod(us, SEC_US)
        d, sod = divmod(s, 86400)
        h, r = divmod(sod, 3600)
        m, sec = divmod(r, 60)
        return f"{self.date(d)}T{h:02d}:{m:02d}:{sec:02d}.{f:06d}+00:00"

    def hms(self, us: int) -> tuple[str, int, int, int, int]:
        s, f = divmod(us, SEC_US)
        d, sod = divmod(s, 86400)
        h, r = divmod(sod, 3600)
        m, sec = divmod(r, 60)
        return self.date(d), h, m, sec, f


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


# ---------------------------------------------------------------------------------------------
# The generator
# ---------------------------------------------------------------------------------------------
class _Out:
    """An event rendered as a template: '\x01' stands for the time field, '\x02' for the value
    of context.received_at. Identity = the template; the line = the template filled in."""

    __slots__ = ("tpl", "org", "uid", "ip")

    def __init__(self, tpl, org, uid, ip):
        self.tpl, self.org, self.uid, self.ip = tpl, org, uid, ip


class _Generator:
    def __init__(self, events: int, seed: int, days: int, files: int, start: date):
        self.N, self.seed, self.D, self.F, self.start = events, seed, days, files, start
        self.rnd = random.Random(seed)
        self._random = self.rnd.random
        self.npg = np.random.Generator(np.random.PCG64(seed))
        self.w = _World(self.rnd, self.npg)
        self.clock = _Clock()
        self.start_day = (start - date(1970, 1, 1)).days
        self.start_us = self.start_day * DAY_US
        self._hexbuf, self._hexpos = "", 0
        # instances: LMS app servers, plus a worker that writes the task events (if F >= 3)
        self.worker = files - 1 if files >= 3 else -1
        self.instances = []
        for i in range(files):
            group = GROUP_WORKER if i == self.worker else GROUP_LMS
            self.instances.append((group, f"i-0{self.rnd.getrandbits(64):016x}"))
        self.cms_instance = (GROUP_CMS, f"i-0{self.rnd.getrandbits(64):016x}")
        # rotation instants: seconds after midnight of the day after, per (instance, day)
        self.rot = [[self.ri(240, 840) for _ in range(days)] for _ in range(files)]
        # per-second arrival weights over a day and its first 15 minutes of the next
        w = HOURLY[(np.arange(86400 + 900) // 3600) % 24]
        self._secw = w
        self._cum = np.concatenate(([0.0], np.cumsum(w)))
        # event lines per (day, instance)
        self.plan = self._plan_lines()
        self.bad_plan = self._plan_bad()
        # fingerprints and facts of every event line, for the exact expected counts
        self.r_id = bytearray()
        self.r_shape = array("b")
        self.r_t = array("q")
        self.r_r = array("q")
        self.r_src = array("b")
        self.r_stream = array("b")
        self.r_org = array("h")
        self.intended = {"exact": [0, 0, 0, 0], "client_resend": [0, 0, 0, 0]}
        self.client_times = ({}, {})  # per-user sorted times of browser / mobile originals
        self.pending: dict[tuple[int, int], list] = {}
        self.files_meta = []
        self.bad_counts = dict.fromkeys(REJECT_REASONS, 0)
        self.blank_count = 0
        self.lines_read = 0

    # ----------------------------------------------------------------------------- planning
    def _plan_lines(self):
        plan = []
        for d in range(self.D):
            n = self.N // self.D + (1 if d < self.N % self.D else 0)
            if self.worker >= 0:
                nw = int(round(n * FAM_W[FAM_SRC == S_TASK].sum() / FAM_W.sum()))
                lms = self.F - 1
            else:
                nw, lms = 0, self.F
            wts = np.array([0.8 + 0.4 * self.rnd.random() for _ in range(lms)])
            split = _largest_remainder(n - nw, wts)
            if self.worker >= 0:
                split.append(nw)
            plan.append(split)
        return plan

    def _plan_bad(self):
        """Bad and blank lines: fixed counts for the corpus, each placed in a random file."""
        kinds = []
        for kind, rate in RATE_BAD.items():
            k = int(round(self.N * rate))
            if self.N >= 1000:
                k = max(k, 1)
            kinds += [kind] * k
        sizes = np.array([n for day in self.plan for n in day], float) + 1.0
        where = self.npg.choice(len(sizes), size=len(kinds), p=sizes / sizes.sum()) if kinds else []
        per_file: dict[int, list[tuple[str, str]]] = {}
        for kind, f in zip(kinds, where):
            per_file.setdefault(int(f), []).append(kind)
        return per_file

    # ----------------------------------------------------------------------------- helpers
    def pick(self, seq):
        """random.choice, without its overhead (this is the hot path)."""
        return seq[int(self._random() * len(seq))]

    def ri(self, a: int, b: int | None = None) -> int:
        """random.randrange(a) / randrange(a, b), without its overhead."""
        if b is None:
            return int(self._random() * a)
        return a + int(self._random() * (b - a))

    def hx(self, n: int = 32) -> str:
        p = self._hexpos
        if p + n > len(self._hexbuf):
            self._hexbuf, p = self.rnd.randbytes(65536).hex(), 0
        self._hexpos = p + n
        return self._hexbuf[p : p + n]

    def uuid(self) -> str:
        h = self.hx(32)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    def window(self, inst: int, d: int) -> tuple[int, int]:
        day0 = self.start_us + d * DAY_US
        ws = day0 + (self.rot[inst][d - 1] * SEC_US if d > 0 else 0)
        return ws, day0 + DAY_US + self.rot[inst][d] * SEC_US

    def arrivals(self, n: int, d: int, ws: int, we: int) -> np.ndarray:
        day0 = self.start_us + d * DAY_US
        a, b = (ws - day0) // SEC_US, (we - day0) // SEC_US
        cum = self._cum
        u = self.npg.uniform(cum[a], cum[b], n)
        idx = np.searchsorted(cum, u, side="right") - 1
        idx = np.clip(idx, a, b - 1)
        frac = np.clip((u - cum[idx]) / self._secw[idx], 0.0, 0.999999)
        return day0 + idx.astype(np.int64) * SEC_US + (frac * SEC_US).astype(np.int64)

    # ----------------------------------------------------------------------------- one file
    def run_file(self, d: int, inst: int, out: Path) -> None:
        rnd, npg, w = self.rnd, self.npg, self.w
        n = self.plan[d][inst]
        ws, we = self.window(inst, d)
        fidx = d * self.F + inst
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
        ex_triple = k_ex // 11  # ~10% of exact groups have a third copy
        br_triple = k_br // 8  # ~15% of browser re-send groups too
        nb = n - (k_ex + k_rs + k_br + k_mr + k_xm + k_rp + k_nr)
        # ---- originals
        if is_worker:
            famw = np.where(FAM_SRC == S_TASK, FAM_W, 0.0)
        elif self.worker >= 0:
            famw = np.where(FAM_SRC == S_TASK, 0.0, FAM_W)
        else:
            famw = FAM_W
        fam = npg.choice(len(FAMILIES), size=max(nb, 0), p=famw / famw.sum())
        arr = self.arrivals(len(fam), d, ws, we)
        src = FAM_SRC[fam]
        shape = np.where(
            src == S_MOBILE,
            npg.choice(len(TIME_SHAPES), size=len(fam), p=SHAPE_P_MOBILE),
            npg.choice(len(TIME_SHAPES), size=len(fam), p=SHAPE_P_SERVER),
        )
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
        # lines not produced because there were too few candidates become more originals
        short = (
            (ex_groups - len(g_ex))
            + (k_rs - len(g_rs))
            + (k_br - br_triple - len(g_br))
            + (k_mr - len(g_mr))
            + (k_xm - len(g_xm))
            + (k_rp - len(g_rp))
            + (k_nr - len(g_nr))
        )
        n_ex_triple = min(ex_triple, len(g_ex))
        n_br_triple = min(br_triple, len(g_br))
        short += (ex_triple - n_ex_triple) + (br_triple - n_br_triple)
        if short > 0:
            extra = npg.choice(len(FAMILIES), size=short, p=famw / famw.sum())
            fam = np.concatenate((fam, extra))
            arr = np.concatenate((arr, self.arrivals(short, d, ws, we)))
            esrc = FAM_SRC[extra]
            src = np.concatenate((src, esrc))
            shape = np.concatenate(
                (
                    shape,
                    np.where(
                        esrc == S_MOBILE,
                        npg.choice(len(TIME_SHAPES), size=short, p=SHAPE_P_MOBILE),
                        npg.choice(len(TIME_SHAPES), size=short, p=SHAPE_P_SERVER),
                    ),
                )
            )
            special = np.concatenate((special, np.zeros(short, np.int8)))
        role = np.zeros(len(fam), np.int8)
        role[g_ex], role[g_rs], role[g_br], role[g_mr] = 1, 2, 3, 4
        role[g_rp], role[g_nr], role[g_xm] = 5, 6, 7
        triple = np.zeros(len(fam), bool)
        triple[g_ex[:n_ex_triple]] = True
        triple[g_br[:n_br_triple]] = True
        # cross-midnight re-sends: the original in the last 1.5 s of the day
        day_end = self.start_us + (d + 1) * DAY_US
        for i in g_xm:
            arr[i] = day_end - self.ri(50_000, 1_500_000)
            shape[i] = 0
        order = np.argsort(arr, kind="stable")
        users = npg.choice(USERS, size=len(fam), p=w.user_p)
        sessions = npg.bytes(16 * USERS).hex() if d != getattr(self, "_sess_day", None) else self._sess
        self._sess_day, self._sess = d, sessions

        keys: list[int] = []
        lines: list[str] = []
        fam_l, arr_l, src_l, shape_l, users_l = fam.tolist(), arr.tolist(), src.tolist(), shape.tolist(), users.tolist()
        role_l, special_l, triple_l = role.tolist(), special.tolist(), triple.tolist()
        renders = self._renderers()
        clock = self.clock
        for i in order.tolist():
            f, a, s, sh = fam_l[i], arr_l[i], src_l[i], shape_l[i]
            u = users_l[i]
            if s == S_MOBILE:
                recv = a - a % 1000
                if rnd.random() < 0.05:  # late upload: device clock days behind the arrival
                    t = recv - self.ri(DAY_US, 3 * DAY_US)
                else:
                    t = recv - int(rnd.lognormvariate(14.5, 1.2)) - 200_000
                u = self._client_user(1, u, t)
            else:
                recv = -1
                t = a
                if s == S_BROWSER:
                    u = self._client_user(0, u, t)
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
            line = self._prefix(a, o, s) + body
            self._record(ident, shape_code, tp, recv, s, stream, org)
            keys.append(a)
            lines.append(line)
            r = role_l[i]
            if r == 0:
                continue
            rec = (ident, shape_code, tp, recv, s, stream, org)
            if r == 1:  # exact, byte-identical
                for _ in range(2 if triple_l[i] else 1):
                    self._place(d, inst, a, line, rec, where=rnd.random())
                    self.intended["exact"][s] += 1
            elif r == 2:  # exact, re-serialized
                self._place(d, inst, a, self._prefix(a, o, s) + _reserialize(body, rnd), rec, where=rnd.random() * 0.8 + 0.2)
                self.intended["exact"][s] += 1
            elif r in (3, 7):  # browser re-send(s): time +0.1..2 s, otherwise identical
                deltas = sorted(self.ri(100_000, 2_000_000) for _ in range(2 if triple_l[i] else 1))
                if r == 7:
                    deltas = [day_end + self.ri(50_000, 1_000_000) - t]
                for dt_ in deltas:
                    t2 = t + dt_
                    tstr2, tp2 = clock.iso(t2, sh)
                    b2 = o.tpl.replace("\x01", '"time": "' + tstr2 + '"')
                    self._place_at(
                        d,
                        inst,
                        t2,
                        self._prefix(t2, o, s) + b2,
                        (ident, shape_code, tp2, -1, s, stream, org),
                        other=rnd.random() < (0.5 if r == 7 else 0.25),
                    )
                    self.intended["client_resend"][s] += 1
            elif r == 4:  # mobile re-send: same time, later received_at
                p = rnd.random()
                lag = (self.ri(2, 60) if p < 0.4 else self.ri(60, 3600) if p < 0.8 else self.ri(3600, 6 * 3600)) * SEC_US + self.ri(
                    1000
                ) * 1000
                if d == self.D - 1:
                    lag = max(SEC_US, min(lag, we - recv - 2 * SEC_US))
                recv2 = recv + lag
                b2 = o.tpl.replace("\x01", tfield).replace("\x02", clock.received(recv2))
                self._place_at(
                    d, inst, recv2, self._prefix(recv2, o, s) + b2, (ident, shape_code, tp, recv2, s, stream, org), other=rnd.random() < 0.3
                )
                self.intended["client_resend"][s] += 1
            elif r == 5:  # legit repeat, same identity 10 s..2 h later
                gap = (self.ri(20 * 60, 40 * 60) if rnd.random() < 0.7 else self.ri(10, 7200)) * SEC_US
                t2 = t + gap + self.ri(SEC_US)
                if d == self.D - 1 and t2 >= we:  # the last file: repeat it earlier instead
                    t2 = t - gap - self.ri(SEC_US)
                tstr2, tp2 = clock.iso(t2, sh)
                b2 = o.tpl.replace("\x01", '"time": "' + tstr2 + '"')
                self._place_at(d, inst, t2, self._prefix(t2, o, s) + b2, (ident, shape_code, tp2, -1, s, stream, org), other=False)
            elif r == 6:  # server/task event with the same identity ~1 s later: both stay
                t2 = t + self.ri(500_000, 1_500_000)
                tstr2, tp2 = clock.iso(t2, sh)
                b2 = o.tpl.replace("\x01", tfield[: tfield.index(": ") + 3] + tstr2 + '"')
                self._place_at(d, inst, t2, self._prefix(t2, o, s) + b2, (ident, shape_code, tp2, -1, s, stream, org), other=False)
        # ---- copies planned for this file by earlier files (and by itself)
        for key, line, rec in self.pending.pop((d, inst), ()):
            self._record(*rec)
            keys.append(key)
            lines.append(line)
        # ---- bad and blank lines
        for kind in self.bad_plan.get(fidx, ()):
            key = ws + int(rnd.random() * (we - ws))
            line = self._bad_line(kind, key)
            keys.append(key)
            lines.append(line)
        self._write(d, inst, keys, lines, out)

    # ----------------------------------------------------------------------------- records
    def _record(self, ident, shape_code, tp, recv, s, stream, org):
        self.r_id += ident
        self.r_shape.append(shape_code)
        self.r_t.append(tp)
        self.r_r.append(recv)
        self.r_src.append(s)
        self.r_stream.append(stream)
        self.r_org.append(org)

    def _client_user(self, which: int, u: int, t: int) -> int:
        """Keep each user's browser (and mobile) events > 10 s apart, so no two originals of a
        client source can share an identity within the 5 s re-send window by accident."""
        book = self.client_times[which]
        for _ in range(1000):
            lst = book.get(u)
            if lst is None:
                book[u] = [t]
                return u
            j = bisect.bisect_left(lst, t)
            if (j == 0 or t - lst[j - 1] > 10 * SEC_US) and (j == len(lst) or lst[j] - t > 10 * SEC_US):
                lst.insert(j, t)
                return u
            u = self.ri(USERS)
        raise RuntimeError("could not place a client event")  # pragma: no cover

    def _place(self, d, inst, key, line, rec, where: float):
        """An exact copy: another instance the same day, the same instance the next day
        (rotation overlap, re-upload), or the same file (a logger writing twice)."""
        if where >= 0.80:
            tgt = (d, inst)
        elif where >= 0.55 and d + 1 < self.D:
            tgt = (d + 1, inst)
        else:
            tgt = self._later_instance(d, inst)
            if tgt[0] == d and not self._holds(tgt[1], d, key):  # keep within that file's hours
                tgt = (d, inst)
        self.pending.setdefault(tgt, []).append((key, line, rec))

    def _holds(self, inst, d, arrival) -> bool:
        ws, we = self.window(inst, d)
        return ws <= arrival < we

    def _later_instance(self, d, inst):
        lms = [j for j in range(inst + 1, self.F) if j != self.worker]
        if lms:
            return d, self.pick(lms)
        if d + 1 < self.D:
            return d + 1, self.pick([j for j in range(self.F) if j != self.worker] or [inst])
        return d, inst

    def _place_at(self, d, inst, arrival, line, rec, other: bool):
        """A later line: the file (this or a later instance) whose window holds its arrival."""
        tgt_inst = inst
        if other:
            lms = [j for j in range(inst + 1, self.F) if j != self.worker]
            if lms:
                tgt_inst = self.pick(lms)
                if not any(self._holds(tgt_inst, dd, arrival) for dd in range(d, self.D)):
                    tgt_inst = inst
        dd = d
        while dd + 1 < self.D and arrival >= self.window(tgt_inst, dd)[1]:
            dd += 1
        self.pending.setdefault((dd, tgt_inst), []).append((arrival, line, rec))

    # ----------------------------------------------------------------------------- lines
    def _prefix(self, arrival: int, o: _Out, s: int) -> str:
        p = self.rnd.random()
        if p >= 0.045:
            return ""
        day, h, m, sec, f = self.clock.hms(arrival)
        if p < 0.02:  # Tutor: Python logging header
            return (
                f"{day} {h:02d}:{m:02d}:{sec:02d},{f // 1000:03d} INFO {self.ri(7, 60)} [tracking] "
                f"[user {o.uid or 'None'}] [ip {o.ip or 'None'}] logger.py:41 - "
            )
        if p < 0.032:  # docker compose
            return "lms-worker-1  | " if s == S_TASK else f"lms-{1 + self.ri(2)}  | "
        y, mo, dd = day.split("-")
        return f"{MONTHS[int(mo) - 1]} {int(dd):2d} {h:02d}:{m:02d}:{sec:02d} ip-10-3-{self.ri(256)}-{self.ri(256)} tracking: "

    def _bad_line(self, kind: tuple[str, str], key: int) -> str:
        rnd = self.rnd
        reason, flavour = kind
        if reason == "blank":
            self.blank_count += 1
            return self.pick(("", "", "   ", "\t", "\x00\x00\x00\x00", " \r", ""))
        self.bad_counts[reason] += 1
        if reason == "not_an_object":
            return self.pick(("[1, 2, 3]", "42", '"tracking"', "[]", "3.14"))
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
            return json.dumps({"username": self.pick(self.w.usernames), "time": self.clock.iso(key, 0)[0]})
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
        o = self._renderers()[f](u, f"{self.rnd.getrandbits(128):032x}", 0)
        return o.tpl.replace("\x01", '"time": "' + self.clock.iso(key, 0)[0] + '"')

    def _long_body(self, minimum: int, key: int) -> str:
        r = self._renderers()
        for _ in range(100):
            if minimum > 5000:
                o = r[FAM["b_problem_graded"]](self.ri(USERS), f"{self.rnd.getrandbits(128):032x}", 2)
            else:
                o = r[self.pick(BIG_FAMILIES)](self.ri(USERS), f"{self.rnd.getrandbits(128):032x}", 0)
            body = o.tpl.replace("\x01", '"time": "' + self.clock.iso(key, 0)[0] + '"')
            if len(body) >= minimum:
                return body
        raise RuntimeError("no long event")  # pragma: no cover

    def _write(self, d, inst, keys, lines, out: Path) -> None:
        rnd = self.rnd
        order = sorted(range(len(lines)), key=keys.__getitem__)
        unsorted, lines = lines, [lines[i] for i in order]
        unsorted.clear()
        # line-level accidents: CRLF endings, NUL runs
        never = ("[1, 2, 3]", "42", '"tracking"', "[]", "3.14")
        for i in range(len(lines)):
            p = rnd.random()
            if p < 0.0005 and lines[i] not in never:
                lines[i] += "\r"
            elif p < 0.0007 and lines[i] not in never:
                lines[i] = "\x00" * self.ri(1, 40) + lines[i]
        if lines and rnd.random() < 0.3 and lines[0] not in never:  # writer kept its offset after copytruncate
            lines[0] = "\x00" * self.ri(200, 4000) + lines[0]
        newline_at_end = not lines or rnd.random() < 0.65 or lines[-1] == ""
        nlines = len(lines)
        parts = [ln.encode("utf-8", "surrogateescape") for ln in lines]
        lines.clear()
        if newline_at_end and nlines:
            parts.append(b"")
        data = b"\n".join(parts)
        group, iid = self.instances[inst]
        rot_s = (self.start_day + d + 1) * 86400 + self.rot[inst][d]
        name = f"tracking.log-{(self.start + timedelta(days=d + 1)).strftime('%Y%m%d')}-{rot_s}.gz"
        del parts
        self._write_gz(out, f"logs/tracking/{group}/{iid}/{name}", data, nlines)

    def _write_gz(self, out: Path, rel: str, data: bytes, nlines: int) -> None:
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = _gzip_bytes(data)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, path)
        self.files_meta.append({"path": rel, "lines": nlines, "bytes": len(blob)})
        self.lines_read += nlines

    # ----------------------------------------------------------------------------- expected
    def expected(self) -> dict:
        n = len(self.r_t)
        ids = np.frombuffer(bytes(self.r_id), dtype="<u8").reshape(-1, 2) if n else np.zeros((0, 2), np.uint64)
        t = np.frombuffer(self.r_t, dtype=np.int64) if n else np.zeros(0, np.int64)
        r = np.frombuffer(self.r_r, dtype=np.int64) if n else np.zeros(0, np.int64)
        src = np.frombuffer(self.r_src, dtype=np.int8) if n else np.zeros(0, np.int8)
        stream = np.frombuffer(self.r_stream, dtype=np.int8) if n else np.zeros(0, np.int8)
        org = np.frombuffer(self.r_org, dtype=np.int16) if n else np.zeros(0, np.int16)
        shape = np.frombuffer(self.r_shape, dtype=np.int8) if n else np.zeros(0, np.int8)
        recv = np.where(r >= 0, r, t)
        kept = np.ones(n, bool)
        dup_exact, dup_resend = [0] * 4, [0] * 4
        if n:
            order = np.lexsort((ids[:, 1], ids[:, 0]))
            sid = ids[order]
            same = np.all(sid[1:] == sid[:-1], axis=1)
            starts = np.flatnonzero(np.concatenate(([True], ~same)))
            ends = np.concatenate((starts[1:], [n]))
            multi = np.flatnonzero(ends - starts > 1)
            for gi in multi.tolist():
                members = order[starts[gi] : ends[gi]].tolist()
                # kept copy = earliest by (received_at, time); exact copies first
                members.sort(key=lambda k: (int(recv[k]), int(t[k]), k))
                seen, distinct = set(), []
                for k in members:
                    ek = (int(shape[k]), int(t[k]), int(r[k]))
                    if ek in seen:
                        kept[k] = False
                        dup_exact[int(src[k])] += 1
                    else:
                        seen.add(ek)
                        distinct.append(k)
                s = int(src[distinct[0]])
                if s in (S_BROWSER, S_MOBILE):
                    anchors: list[int] = []
                    for k in distinct:
                        if any(abs(int(t[k]) - int(t[a])) <= RESEND_WINDOW_US for a in anchors):
                            kept[k] = False
                            dup_resend[s] += 1
                        else:
                            anchors.append(k)
        day = (recv - self.start_us) // DAY_US if n else np.zeros(0, np.int64)
        day0 = int(day.min()) if n else 0
        rows = {}
        for si, name in enumerate(STREAMS):
            sel = kept & (stream == si)
            rows[name] = self._by_day(day[sel], day0)
        org_rows = {}
        research = kept & (stream == 0) & (org >= 0)
        for oi in sorted(set(org[research].tolist())):
            org_rows[self.w.orgs[oi]] = self._by_day(day[research & (org == oi)], day0)
        org_rows = dict(sorted(org_rows.items()))
        return {
            "generator": {"events": self.N, "seed": self.seed, "days": self.D, "files": self.F, "start_date": self.start.isoformat()},
            "files": sorted(self.files_meta, key=lambda x: x["path"]),
            "lines_read": self.lines_read,
            "blank_lines": self.blank_count,
            "rejected": dict(self.bad_counts),
            "duplicates_removed": {"exact": sum(dup_exact), "client_resend": sum(dup_resend)},
            "duplicates_by_source": {SOURCES[i]: dup_exact[i] + dup_resend[i] for i in range(4)},
            "rows": rows,
            "org_rows": org_rows,
        }

    def _by_day(self, days: np.ndarray, day0: int) -> dict:
        if not len(days):
            return {}
        counts = np.bincount(days - day0)
        return {self.clock.date(self.start_day + day0 + i): int(c) for i, c in enumerate(counts) if c}

    # ----------------------------------------------------------------------------- renderers
    def _renderers(self):
        r = getattr(self, "_r", None)
        if r is None:
            r = self._r = [getattr(self, "_r_" + name) for name in FAM_NAMES]
        return r

    def _user(self, u: int):
        w = self.w
        return w.usernames[u], w.user_ids[u], w.ips[u], w.agents_q[w.agent[u]], w.langs_q[w.lang[u]]

    def _course(self, u: int) -> _Course:
        return self.w.courses[self.w.user_courses[u][self.ri(3)]]

    def _uid(self, uid: str) -> str:
        p = self.rnd.random()
        return uid if p >= 0.017 else ('""' if p < 0.01 else "null")

    def _page(self, c: _Course) -> tuple[str, tuple[str, str]]:
        """A course page URL (legacy courseware, or the learning MFE for new-style keys)."""
        rnd = self.rnd
        ch, sq = self.pick(c.seqs)
        if c.v1 and rnd.random() < 0.5:
            vb = _block_key(c, "vertical", self.pick(c.verticals)[1])
            return f"{c.mfe}/{_block_key(c, 'sequential', sq)}/{vb}", (ch, sq)
        return f"{c.lms}/courseware/{ch}/{sq}/{self.ri(1, 6)}", (ch, sq)

    def _ctx_variant(self, c: _Course, allow_page_only: bool = False) -> tuple[str, str, str | None]:
        """(org_id, course_id, org as derived): mostly set; sometimes the org must come from
        the course id; for browser events sometimes only the page URL names the course."""
        p = self.rnd.random()
        if p < 0.94:
            return c.org, c.key, c.org
        if p < 0.97 or not allow_page_only:
            return "", c.key, c.org
        return "", "", c.org  # caller guarantees the course key is in the page

    # -- server ----------------------------------------------------------------------------
    def _server(self, name, ctx, u, sess, event, page="null", event_type=None, with_name=True, username=None, referer=None):
        un, uid, ip, ag, al = self._user(u)
        username = '"' + un + '"' if username is None else username
        et = '"' + name + '"' if event_type is None else event_type
        ref = '""' if referer is None else '"' + referer + '"'
        head = f'{{"name": {et}, ' if with_name else "{"
        return (
            f'{head}"context": {ctx}, "username": {username}, "session": "{sess}", "ip": "{ip}", '
            f'"agent": {ag}, "host": "{SITE_HOST}", "referer": {ref}, "accept_language": {al}, '
            f'"event": {event}, \x01, "event_type": {et}, "event_source": "server", "page": {page}}}'
        )

    def _r_s_implicit(self, u, sess, special):
        rnd = self.rnd
        c = self._course(u)
        un, uid, ip, ag, al = self._user(u)
        p = rnd.random()
        module = ""
        get, post = "{}", "{}"
        page, (ch, sq) = self._page(c)
        if p < 0.35:
            path = f"/courses/{c.key}/courseware/{ch}/{sq}/"
            if rnd.random() < 0.5:
                path += f"{self.ri(1, 6)}"
                get = f'{{"activate_block_id": ["{_block_key(c, "vertical", self.pick(c.verticals)[1])}"]}}'
        elif p < 0.60:
            h, usage, dn = self.pick(c.problems)
            path = f"/courses/{c.key}/xblock/{usage}/handler/xmodule_handler/problem_check"
            module = f', "module": {{"display_name": {dn}, "usage_key": "{usage}"}}'
            if rnd.random() < 0.75:
                post = ", ".join(f'"input_{h}_{k + 2}_1": ["choice_{self.ri(4)}"]' for k in range(self.ri(1, 4)))
            else:  # free-text answers: long ones push the payload past 512 characters
                text = "".join(self.pick(ANSWER_TEXT) for _ in range(self.ri(1, 14)))
                post = f'"input_{h}_2_1": [{json.dumps(text)}]'
            post = "{" + post + "}"
        elif p < 0.75:
            h, vid, usage, yt, dur = self.pick(c.videos)
            path = f"/courses/{c.key}/xblock/{usage}/handler/xmodule_handler/save_user_state"
            pos = self.ri(dur)
            post = (
                f'{{"saved_video_position": ["{pos // 3600:02d}:{pos // 60 % 60:02d}:{pos % 60:02d}"], '
                f'"speed": ["{self.pick(("1.00", "1.25", "1.50", "2.00", "0.75"))}"]}}'
            )
        elif p < 0.85:
            path = f"/courses/{c.key}/{self.pick(('progress', 'course/', 'dates', 'bookmarks/', 'instructor'))}"
        elif p < 0.93:
            path = f"/api/courseware/sequence/{_block_key(c, 'sequential', sq)}"
        else:
            disc = self.pick(c.discussions)
            path = f"/courses/{c.key}/discussion/forum/{disc}/threads/{self.hx(24)}"
            if rnd.random() < 0.4:
                text = "".join(self.pick(FORUM_TEXT) for _ in range(self.ri(1, 12)))
                post = f'{{"body": [{json.dumps(text)}], "thread_type": ["discussion"]}}'
        payload = f'{{"GET": {get}, "POST": {post}}}' if rnd.random() < 0.7 else f'{{"POST": {post}, "GET": {get}}}'
        if len(payload) > 512:
            payload = payload[:512]
        event = json.dumps(payload)
        q = rnd.random()
        if q < 0.03 and path.startswith("/courses/"):  # the org is only in the URL path of event_type
            org_id, course_id, org = "", "", c.org
        else:
            org_id, course_id, org = self._ctx_variant(c)
        uidv = self._uid(uid)
        ctx = (
            f'{{"course_id": "{course_id}", "course_user_tags": {{}}, "user_id": {uidv}, "path": "{path}", '
            f'"org_id": "{org_id}", "enterprise_uuid": ""{module}}}'
        )
        referer = page if rnd.random() < 0.8 else f"{c.lms}/course/"
        if rnd.random() < 0.1:  # older writer: no name, no session, another key order
            src = ', "event_source": "server"' if rnd.random() < 0.7 else ""
            tpl = (
                f'{{"username": "{un}", "event_type": "{path}", "ip": "{ip}", "agent": {ag}, '
                f'"host": "{SITE_HOST}", "referer": "{referer}", "accept_language": {al}, "event": {event}{src}, '
                f'"context": {ctx}, \x01, "page": null}}'
            )
        else:
            tpl = self._server(path, ctx, u, sess, event, referer=referer)
        return _Out(tpl, org, uid, ip)

    def _r_s_implicit_noorg(self, u, sess, special):
        rnd = self.rnd
        un, uid, ip, ag, al = self._user(u)
        path = self.pick(
            (
                "/dashboard",
                "/dashboard",
                "/login_ajax",
                "/account/settings",
                "/",
                f"/api/user/v1/accounts/{un}",
                "/api/enrollment/v1/enrollment",
                "/courses",
                "/api/learner_home/init",
                "/notifications/",
                "/logout",
                "/register",
            )
        )
        post = "{}"
        username, uidv = '"' + un + '"', uid
        if path in ("/", "/login_ajax", "/register", "/courses") and rnd.random() < 0.5:
            username, uidv = '""', self.pick(('""', "null"))
        if path == "/login_ajax":
            post = f'{{"email": ["{un}@example.com"], "password": "********", "remember": ["{self.pick(("true", "false"))}"]}}'
        payload = f'{{"GET": {{}}, "POST": {post}}}'
        ctx = f'{{"course_id": "", "org_id": "", "user_id": {uidv}, "path": "{path}", "enterprise_uuid": ""}}'
        ref = self.pick((f"{LMS}/dashboard", f"{LMS}/", "https://www.edx.org/", f"{LMS}/login", ""))
        return _Out(
            self._server(path, ctx, u, sess, orjson.dumps(payload).decode(), username=username, referer=ref),
            None,
            None if uidv in ('""', "null") else uid,
            ip,
        )

    def _r_s_problem_check(self, u, sess, special):
        rnd = self.rnd
        c = self._course(u)
        un, uid, ip, ag, al = self._user(u)
        h, usage, dn = self.pick(c.problems)
        n_in = self.ri(1, 5)
        ids = [f"{h}_{k + 2}_1" for k in range(n_in)]
        grade = self.ri(n_in + 1)
        corr = [rnd.random() < grade / n_in for _ in ids]
        sub, cmap, ans, st_ans, inp = [], [], [], [], []
        for i, ok in zip(ids, corr):
            ch = self.ri(5)
            q = self.pick(ANSWER_TEXT)
            sub.append(
                f'"{i}": {{"input_type": "choicegroup", "question": {json.dumps(q)}, '
                f'"response_type": "multiplechoiceresponse", "answer": "Option {ch + 1}: {q[:30].strip()}", '
                f'"variant": "", "correct": {"true" if ok else "false"}}}'
            )
            msg = (
                '""'
                if rnd.random() < 0.6
                else json.dumps(
                    f'<div class="feedback-hint-{"correct" if ok else "incorrect"}"><div class="hint-label">'
                    f'{"Correct" if ok else "Incorrect"}: </div><div class="hint-text">{self.pick(FORUM_TEXT).strip()}</div></div>'
                )
            )
            cmap.append(
                f'"{i}": {{"correctness": "{"correct" if ok else "incorrect"}", "npoints": null, '
                f'"msg": {msg}, "hint": "", "hintmode": null, "queuestate": null, "answervariable": null}}'
            )
            ans.append(f'"{i}": "choice_{ch}"')
            st_ans.append(f'"{i}": "choice_{self.ri(5)}"')
            inp.append(f'"{i}": {{}}')
        event = (
            f'{{"state": {{"seed": 1, "student_answers": {{{", ".join(st_ans)}}}, "has_saved_answers": false, '
            f'"correct_map": {{}}, "input_state": {{{", ".join(inp)}}}, "done": null}}, "problem_id": "{usage}", '
            f'"answers": {{{", ".join(ans)}}}, "grade": {grade}, "max_grade": {n_in}, '
            f'"correct_map": {{{", ".join(cmap)}}}, "success": "{"correct" if grade == n_in else "incorrect"}", '
            f'"attempts": {self.ri(1, 4)}, "submission": {{{", ".join(sub)}}}}}'
        )
        ctx, org = self._problem_context(c, usage, dn, uid, asides=True)
        page, _ = self._page(c)
        return _Out(self._server("problem_check", ctx, u, sess, event, page='"x_module"', referer=page), org, uid, ip)

    def _problem_context(self, c, usage, dn, uid, asides: bool) -> tuple[str, str]:
        """The `context` of a server event raised by a problem's handler, and the event's org."""
        org_id, course_id, org = self._ctx_variant(c)
        path = f"/courses/{c.key}/xblock/{usage}/handler/xmodule_handler/problem_check"
        tail = ', "asides": {}' if asides else ""
        ctx = (
            f'{{"course_id": "{course_id}", "course_user_tags": {{}}, "user_id": {self._uid(uid)}, "path": "{path}", '
            f'"org_id": "{org_id}", "enterprise_uuid": "", "module": {{"display_name": {dn}, "usage_key": "{usage}"}}{tail}}}'
        )
        return ctx, org

    def _subsection_grade(self, c, uid, tx, first_attempted) -> str:
        """Payload of edx.grades.subsection.grade_calculated; `first_attempted()` draws the day and
        time of the first attempt (October), at the same point of the random stream as before."""
        tot = float(self.ri(1, 12))
        earned = float(self.ri(int(tot) + 1))
        block = _block_key(c, "sequential", self.pick(c.seqs)[1])
        return (
            f'{{"user_id": "{uid}", "course_id": "{c.key}", "block_id": "{block}", '
            f'"course_version": "{c.version}", "weighted_total_earned": {earned}, "weighted_total_possible": {tot}, '
            f'"weighted_graded_earned": {earned}, "weighted_graded_possible": {tot}, '
            f'"first_attempted": "2026-10-{first_attempted()}+00:00", '
            f'"subtree_edited_timestamp": "2026-09-{self.ri(1, 29):02d} 15:47:38.629000+00:00", '
            f'"event_transaction_id": "{tx}", "event_transaction_type": "edx.grades.problem.submitted", '
            f'"visible_blocks_hash": "{self.hx(27)}="}}'
        )

    def _r_s_grades(self, u, sess, special):
        rnd = self.rnd
        c = self._course(u)
        un, uid, ip, ag, al = self._user(u)
        h, usage, dn = self.pick(c.problems)
        p = rnd.random()
        tx = self.uuid()
        if p < 0.5:
            name = "edx.grades.problem.submitted"
            wp = self.ri(1, 4)
            event = (
                f'{{"user_id": "{uid}", "course_id": "{c.key}", "problem_id": "{usage}", "event_transaction_id": "{tx}", '
                f'"event_transaction_type": "edx.grades.problem.submitted", "weighted_earned": {self.ri(wp + 1)}, '
                f'"weighted_possible": {wp}}}'
            )
        elif p < 0.85:
            name = "edx.grades.subsection.grade_calculated"
            event = self._subsection_grade(
                c, uid, tx, lambda: f"{self.ri(1, 29):02d} {self.ri(24):02d}:{self.ri(60):02d}:{self.ri(60):02d}.{self.ri(10**6):06d}"
            )
        else:
            name = "edx.grades.course.grade_calculated"
            event = (
                f'{{"user_id": "{uid}", "course_id": "{c.key}", "course_version": "{c.version}", '
                f'"percent_grade": {self.ri(101) / 100}, "letter_grade": "{self.pick(("", "", "Pass"))}", '
                f'"course_edited_timestamp": "2026-09-{self.ri(1, 29):02d} 15:47:38.629000+00:00", '
                f'"event_transaction_id": "{tx}", "event_transaction_type": "edx.grades.problem.submitted", '
                f'"grading_policy_hash": "{self.hx(27)}="}}'
            )
        ctx, org = self._problem_context(c, usage, dn, uid, asides=False)
        return _Out(self._server(name, ctx, u, sess, event, referer=self._page(c)[0]), org, uid, ip)

    def _r_s_enrollment(self, u, sess, special):
        c = self._course(u)
        un, uid, ip, ag, al = self._user(u)
        name = self.pick(
            (
                "edx.course.enrollment.activated",
                "edx.course.enrollment.activated",
                "edx.course.enrollment.deactivated",
                "edx.course.enrollment.mode_changed",
            )
        )
        mode = self.pick(("audit", "audit", "verified", "honor", "professional"))
        event = f'{{"course_id": "{c.key}", "user_id": {uid}, "mode": "{mode}"}}'
        org_id, course_id, org = self._ctx_variant(c)
        path = self.pick(("/api/enrollment/v1/enrollment", "/change_enrollment", "/api/commerce/v0/baskets/"))
        ctx = (
            f'{{"course_id": "{course_id}", "org_id": "{org_id}", "user_id": {self._uid(uid)}, "path": "{path}", '
            f'"enterprise_uuid": "", "course_user_tags": {{}}}}'
        )
        return _Out(self._server(name, ctx, u, sess, event, referer=f"{LMS}/courses/{c.key}/about"), org, uid, ip)

    def _r_s_forum(self, u, sess, special):
        c = self._course(u)
        un, uid, ip, ag, al = self._user(u)
        name = self.pick(
            (
                "edx.forum.thread.created",
                "edx.forum.response.created",
                "edx.forum.comment.created",
                "edx.forum.thread.viewed",
                "edx.forum.thread.voted",
                "edx.forum.searched",
            )
        )
        disc = self.pick(c.discussions)
        tid = self.hx(24)
        n = self.ri(1, 40)
        title = _q(self.pick(FORUM_TITLES).format(n=n))
        if special == 3:  # a foreign writer's Latin-1 / stray byte inside a string: invalid UTF-8
            title = title[:-1] + self.pick((" caf\udce9", " \udcff\udcfe", " na\udcefve")) + '"'
        body = "".join(self.pick(FORUM_TEXT) for _ in range(self.ri(1, 30)))
        truncated = len(body) > 2000
        body_q = _q(body[:2000])
        url = f"{LMS}/courses/{c.key}/discussion/forum/{disc}/threads/{tid}"
        common = (
            f'"commentable_id": "{disc}", "discussion": {{"id": "{tid}"}}, "team_id": null, "url": "{url}", '
            f'"user_forums_roles": ["Student"], "user_course_roles": [], "category_name": {title}, "category_id": "{disc}"'
        )
        if name == "edx.forum.thread.created":
            event = (
                f'{{"title": {title}, "body": {body_q}, "truncated": {str(truncated).lower()}, "thread_type": "discussion", '
                f'"group_id": null, "anonymous": false, "anonymous_to_peers": false, "options": {{"followed": true}}, '
                f'"id": "{tid}", "title_truncated": false, {common}}}'
            )
        elif name in ("edx.forum.response.created", "edx.forum.comment.created"):
            event = (
                f'{{"body": {body_q}, "truncated": {str(truncated).lower()}, "id": "{self.hx(24)}", '
                f'"options": {{"followed": false}}, "response": {{"id": "{self.hx(24)}"}}, {common}}}'
            )
        elif name == "edx.forum.searched":
            event = f'{{"query": {title}, "page": 1, "total_results": {self.ri(50)}, "corrected_text": null, "group_id": null}}'
        else:
            event = f'{{"id": "{tid}", "title": {title}, "title_truncated": false, {common}}}'
        org_id, course_id, org = self._ctx_variant(c)
        ctx = (
            f'{{"course_id": "{course_id}", "course_user_tags": {{}}, "user_id": {self._uid(uid)}, '
            f'"path": "/courses/{c.key}/discussion/{disc}/threads/create", "org_id": "{org_id}", "enterprise_uuid": ""}}'
        )
        return _Out(self._server(name, ctx, u, sess, event, referer=url), org, uid, ip)

    def _r_s_misc(self, u, sess, special):
        rnd = self.rnd
        c = self._course(u)
        un, uid, ip, ag, al = self._user(u)
        h, usage, dn = self.pick(c.problems)
        if rnd.random() < 0.6:
            name, event = "showanswer", f'{{"problem_id": "{usage}"}}'
        else:
            name = "edx.problem.hint.demandhint_displayed"
            event = (
                f'{{"module_id": "{usage}", "hint_index": {self.ri(3)}, "hint_len": 3, '
                f'"hint_text": {json.dumps(self.pick(FORUM_TEXT).strip())}}}'
            )
        org_id, course_id, org = self._ctx_variant(c)
        ctx = (
            f'{{"course_id": "{course_id}", "course_user_tags": {{}}, "user_id": {self._uid(uid)}, '
            f'"path": "/courses/{c.key}/xblock/{usage}/handler/xmodule_handler/{name}", "org_id": "{org_id}", '
            f'"enterprise_uuid": "", "module": {{"display_name": {dn}, "usage_key": "{usage}"}}}}'
        )
        return _Out(self._server(name, ctx, u, sess, event, page='"x_module"', referer=self._page(c)[0]), org, uid, ip)

    def _r_s_bi(self, u, sess, special):
        un, uid, ip, ag, al = self._user(u)
        name, path = self.pick(
            (
                ("edx.bi.user.account.registered", "/api/user/v2/account/registration/"),
                ("edx.bi.user.account.authenticated", "/login_ajax"),
                ("edx.bi.user.account.authenticated", "/login_ajax"),
            )
        )
        prov = self.pick(("null", "null", '"Google"', '"Facebook"'))
        label = self.pick(("null", '""'))
        event = f'{{"category": "conversion", "label": {label}, "provider": {prov}}}'
        ctx = f'{{"course_id": "", "org_id": "", "user_id": {uid}, "path": "{path}", "enterprise_uuid": ""}}'
        return _Out(self._server(name, ctx, u, sess, event, referer=f"{LMS}/login"), None, uid, ip)

    # -- browser ---------------------------------------------------------------------------
    def _browser(self, name, u, sess, event, c: _Course | None, page, page_has_key):
        un, uid, ip, ag, al = self._user(u)
        if c is None:
            org_id, course_id, org = "", "", None
        else:
            org_id, course_id, org = self._ctx_variant(c, allow_page_only=page_has_key)
        ctx = f'{{"user_id": {self._uid(uid)}, "path": "/event", "course_id": "{course_id}", "org_id": "{org_id}", "enterprise_uuid": ""}}'
        ref = page if self.rnd.random() < 0.9 else f"{LMS}/dashboard"
        return _Out(
            f'{{"name": "{name}", "context": {ctx}, "username": "{un}", "session": "{sess}", "ip": "{ip}", '
            f'"agent": {ag}, "host": "{SITE_HOST}", "referer": "{ref}", "accept_language": {al}, '
            f'"event": {event}, \x01, "event_type": "{name}", "event_source": "browser", "page": "{page}"}}',
            org,
            uid,
            ip,
        )

    def _browser_page(self, c: _Course):
        """(page URL, whether it names the course key)."""
        rnd = self.rnd
        if rnd.random() < 0.35 and c.v1:  # the xblock iframe: a block key, not a course key
            return (
                f"{LMS}/xblock/{_block_key(c, 'vertical', self.pick(c.verticals)[1])}"
                f"?show_title=0&show_bookmark_button=0&recheck_access=1&view=student_view"
            ), False
        return self._page(c)[0], True

    def _r_b_video(self, u, sess, special):
        rnd = self.rnd
        c = self._course(u)
        h, vid, usage, yt, dur = self.pick(c.videos)
        name = self.pick(
            (
                "play_video",
                "play_video",
                "pause_video",
                "pause_video",
                "seek_video",
                "load_video",
                "stop_video",
                "speed_change_video",
                "show_transcript",
                "hide_transcript",
            )
        )
        code = "html5" if rnd.random() < 0.4 else yt
        ct = f"{rnd.random() * dur:.3f}".rstrip("0").rstrip(".")
        if name == "seek_video":
            ev = (
                f'{{\\"id\\":\\"{vid}\\",\\"code\\":\\"{code}\\",\\"old_time\\":{ct},'
                f'\\"new_time\\":{self.ri(dur)},\\"type\\":\\"{self.pick(("onSlideSeek", "onSkipSeek", "onClickSeek"))}\\",'
                f'\\"duration\\":{dur}}}'
            )
        elif name == "speed_change_video":
            ev = (
                f'{{\\"id\\":\\"{vid}\\",\\"code\\":\\"{code}\\",\\"current_time\\":{ct},'
                f'\\"old_speed\\":\\"1.0\\",\\"new_speed\\":\\"{self.pick(("1.25", "1.50", "2.0", "0.75"))}\\",\\"duration\\":{dur}}}'
            )
        elif name == "load_video":
            ev = f'{{\\"id\\":\\"{vid}\\",\\"code\\":\\"{code}\\",\\"duration\\":{dur},\\"currentTime\\":{ct}}}'
        elif name in ("show_transcript", "hide_transcript"):
            ev = f'{{\\"id\\":\\"{vid}\\",\\"code\\":\\"{code}\\",\\"current_time\\":{ct},\\"duration\\":{dur}}}'
        else:
            ev = f'{{\\"id\\":\\"{vid}\\",\\"currentTime\\":{ct},\\"code\\":\\"{code}\\",\\"duration\\":{dur}}}'
        page, has_key = self._browser_page(c)
        return self._browser(name, u, sess, f'"{ev}"', c, page, has_key)

    def _r_b_problem_check(self, u, sess, special):
        c = self._course(u)
        h, usage, dn = self.pick(c.problems)
        q = "&".join(f"input_{h}_{k + 2}_1=choice_{self.ri(5)}" for k in range(self.ri(1, 4)))
        page, has_key = self._browser_page(c)
        return self._browser("problem_check", u, sess, f'"{q}"', c, page, has_key)

    def _r_b_problem_graded(self, u, sess, special):
        c = self._course(u)
        h, usage, dn = self.pick(c.problems)
        q = f"input_{h}_2_1=choice_{self.ri(5)}"
        n_par = self.ri(30, 80) if special == 2 else self.ri(2, 8)
        parts = [
            f'\n\n\n\n<h3 class="hd hd-3 problem-header" id="{h}-problem-title" aria-describedby="{usage}-problem-progress" '
            f'tabindex="-1">\n  {json.loads(dn)}\n</h3>\n\n<div class="problem-progress" id="{usage}-problem-progress"></div>\n\n'
            f'<div class="problem">\n  <div>\n'
        ]
        for k in range(n_par):
            parts.append(
                f"  <p>{self.pick(FORUM_TEXT).strip()} {self.pick(ANSWER_TEXT).strip()}</p>\n"
                f'  <div class="wrapper-problem-response" tabindex="-1" aria-label="Question {k + 1}" role="group">'
                f'<div class="choicegroup capa_inputtype" id="inputtype_{h}_{k + 2}_1">\n'
                f'    <fieldset aria-describedby="status_{h}_{k + 2}_1">\n'
                f'      <input type="radio" name="input_{h}_{k + 2}_1" id="input_{h}_{k + 2}_1_choice_{self.ri(5)}" '
                f'class="field-input input-radio" value="choice_{self.ri(5)}"/> {self.pick(ANSWER_TEXT).strip()}\n'
                f"    </fieldset>\n  </div></div>\n"
            )
        parts.append("  </div>\n</div>\n")
        html = "".join(parts)
        ev = "[" + json.dumps(q) + ", " + json.dumps(html) + "]"
        page, has_key = self._browser_page(c)
        return self._browser("problem_graded", u, sess, ev, c, page, has_key)

    def _r_b_problem_show(self, u, sess, special):
        c = self._course(u)
        h, usage, dn = self.pick(c.problems)
        page, has_key = self._browser_page(c)
        return self._browser("problem_show", u, sess, f'"{{\\"problem\\":\\"{usage}\\"}}"', c, page, has_key)

    def _r_b_seq(self, u, sess, special):
        rnd = self.rnd
        c = self._course(u)
        ch, sq = self.pick(c.seqs)
        name = self.pick(("seq_goto", "seq_next", "seq_next", "seq_prev"))
        n = self.ri(2, 9)
        old = self.ri(1, n + 1)
        new = min(n, old + 1) if name == "seq_next" else max(1, old - 1) if name == "seq_prev" else self.ri(1, n + 1)
        key = _block_key(c, "sequential", sq)
        if rnd.random() < 0.5:
            ev = f'"{{\\"old\\":{old},\\"new\\":{new},\\"id\\":\\"{key}\\"}}"'
        else:
            ev = (
                f'"{{\\"current_tab\\":{old},\\"tab_count\\":{n},\\"target_tab\\":{new},'
                f'\\"widget_placement\\":\\"{self.pick(("top", "bottom"))}\\",\\"id\\":\\"{key}\\"}}"'
            )
        page, has_key = self._page(c)[0], True
        return self._browser(name, u, sess, ev, c, page, has_key)

    def _r_b_link(self, u, sess, special):
        c = self._course(u)
        page, has_key = self._browser_page(c)
        target = self.pick(
            (
                "https://www.youtube.com/watch?v=" + self.pick(c.videos)[3],
                f"{c.lms}/progress",
                "https://docs.python.org/3/library/functions.html",
                f"{c.lms}/course/",
                "https://en.wikipedia.org/wiki/Fourier_transform",
                f"{LMS}/dashboard",
                f"{c.lms}/jump_to/{_block_key(c, 'vertical', self.pick(c.verticals)[1])}",
            )
        )
        return self._browser("edx.ui.lms.link_clicked", u, sess, f'{{"current_url": "{page}", "target_url": "{target}"}}', c, page, has_key)

    def _r_b_outline(self, u, sess, special):
        c = self._course(u)
        ch, sq = self.pick(c.seqs)
        tgt = f"{c.lms}/jump_to/{_block_key(c, 'sequential', sq)}"
        page = f"{c.lms}/course/"
        return self._browser(
            "edx.ui.lms.outline.selected",
            u,
            sess,
            f'{{"current_url": "{page}", "target_name": {self.pick(c.problems)[2]}, '
            f'"target_url": "{tgt}", "widget_placement": "{self.pick(("accordion", "course-outline"))}"}}',
            c,
            page,
            True,
        )

    def _r_b_page_close(self, u, sess, special):
        rnd = self.rnd
        if rnd.random() < 0.2:
            page = self.pick((f"{LMS}/dashboard", f"{LMS}/account/settings", f"{LMS}/courses"))
            return self._browser("page_close", u, sess, '""', None, page, False)
        c = self._course(u)
        page, has_key = self._browser_page(c)
        return self._browser("page_close", u, sess, '""', c, page, has_key)

    def _r_b_resume(self, u, sess, special):
        c = self._course(u)
        page = f"{c.lms}/course/"
        url = f"{c.lms}/jump_to/{_block_key(c, 'vertical', self.pick(c.verticals)[1])}"
        return self._browser(
            "edx.course.home.resume_course.clicked",
            u,
            sess,
            f'{{"event_type": "{self.pick(("resume", "start"))}", "url": "{url}"}}',
            c,
            page,
            True,
        )

    def _r_b_bi(self, u, sess, special):
        c = self._course(u)
        name = self.pick(
            (
                "edx.bi.course.upgrade.sidebarupsell.displayed",
                "edx.bi.course.upgrade.sidebarupsell.displayed",
                "edx.bi.course.upgrade.sidebarupsell.clicked",
                "edx.bi.course.upgrade.sock.displayed",
            )
        )
        event = (
            f'{{"courserun_key": "{c.key}", "linkCategory": "green_upgrade", "linkName": "course_home_sidebar_green", '
            f'"linkType": "button", "pageName": "course_home", "org_key": "{c.org}", "value": {self.pick((49, 99, 149, 199))}}}'
        )
        return self._browser(name, u, sess, event, c, f"{c.lms}/course/", True)

    # -- mobile ----------------------------------------------------------------------------
    def _mobile(self, name, event_type, u, event, c: _Course, component):
        un, uid, ip, ag, al = self._user(u)
        agent, app, client = self.w.mobile_client(u)
        org_id, course_id, org = self._ctx_variant(c)
        page, _ = self._page(c)
        ctx = (
            f'{{"component": "{component}", "received_at": "\x02", "course_id": "{course_id}", '
            f'"path": "/segment/event", "user_id": {uid}, "org_id": "{org_id}", "application": {app}, '
            f'"client": {client}}}'
        )
        ipv = '""' if self.rnd.random() < 0.7 else f'"{ip}"'
        return _Out(
            f'{{"username": "{un}", "event_source": "mobile", "name": "{name}", \x01, "agent": {agent}, '
            f'"page": "{page}", "host": "{SITE_HOST}", "session": "", "context": {ctx}, "ip": {ipv}, '
            f'"event": {event}, "event_type": "{event_type}"}}',
            org,
            uid,
            None,
        )

    def _r_m_video(self, u, sess, special):
        rnd = self.rnd
        c = self._course(u)
        h, vid, usage, yt, dur = self.pick(c.videos)
        name, legacy = self.pick(
            (
                ("edx.video.played", "play_video"),
                ("edx.video.played", "play_video"),
                ("edx.video.paused", "pause_video"),
                ("edx.video.position.changed", "seek_video"),
                ("edx.video.loaded", "load_video"),
                ("edx.video.stopped", "stop_video"),
                ("edx.video.transcript.shown", "show_transcript"),
            )
        )
        ct = f"{rnd.random() * dur:.3f}"
        mid = usage
        if name == "edx.video.position.changed":
            body = (
                f'"code": "mobile", "id": "{vid}", "old_time": {ct}, "new_time": {self.ri(dur)}.0, '
                f'"type": "{self.pick(("onSkipSeek", "onSlideSeek"))}", "module_id": "{mid}"'
            )
        else:
            body = f'"code": "mobile", "id": "{vid}", "currentTime": {ct}, "module_id": "{mid}"'
        if self.w.mobile_client(u)[1].find("android") >= 0:
            event = json.dumps("{" + body + "}")  # the Android app: a JSON string
        else:
            event = "{" + body + "}"  # iOS: an object
        return self._mobile(name, legacy, u, event, c, "videoplayer")

    def _r_m_bi(self, u, sess, special):
        c = self._course(u)
        name, label = self.pick(
            (
                ("edx.bi.app.navigation.screen", "Course Outline"),
                ("edx.bi.app.navigation.screen", "Course Dashboard"),
                ("edx.bi.app.navigation.screen", "Unit Detail"),
                ("edx.bi.app.videos.download.toggled", "Bulk Download"),
            )
        )
        event = (
            f'{{"category": "{"screen" if "screen" in name else "video"}", "label": "{label}", '
            f'"course_id": "{c.key}", "app_name": "{self.pick(("edx.mobileapp.android", "edx.mobileapp.iOS"))}", '
            f'"connection_type": "{self.pick(("wifi", "cellular"))}", "screen_position": {self.ri(10000)}}}'
        )
        return self._mobile(name, name, u, event, c, "navigation")

    # -- task (celery worker) --------------------------------------------------------------
    def _r_t_grades(self, u, sess, special):
        rnd = self.rnd
        c = self._course(u)
        uid = self.w.user_ids[u]
        tx = self.uuid()
        p = rnd.random()
        if p < 0.55:
            name = "edx.grades.subsection.grade_calculated"
            event = self._subsection_grade(c, uid, tx, lambda: f"{self.ri(1, 29):02d} 20:55:53.{self.ri(10**6):06d}")
        elif p < 0.85:
            name = "edx.grades.course.grade_calculated"
            event = (
                f'{{"user_id": "{uid}", "course_id": "{c.key}", "course_version": "{c.version}", '
                f'"percent_grade": {self.ri(101) / 100}, "letter_grade": "", '
                f'"course_edited_timestamp": "2026-09-{self.ri(1, 29):02d} 15:47:38.629000+00:00", '
                f'"event_transaction_id": "{tx}", "event_transaction_type": "edx.grades.problem.submitted", '
                f'"grading_policy_hash": "{self.hx(27)}="}}'
            )
        elif p < 0.95:
            name = self.pick(("edx.course.grade.passed.first_time", "edx.course.grade.now_passed", "edx.course.grade.now_failed"))
            event = (
                f'{{"user_id": "{uid}", "course_id": "{c.key}", "event_transaction_id": "{tx}", '
                f'"event_transaction_type": "edx.grades.problem.submitted"}}'
            )
        else:
            name = "edx.certificate.created"
            event = (
                f'{{"user_id": {uid}, "course_id": "{c.key}", "certificate_id": "{self.hx(32)}", '
                f'"certificate_url": "{LMS}/certificates/{self.hx(32)}", "enrollment_mode": "verified", '
                f'"generation_mode": "batch"}}'
            )
        org_id, course_id, org = self._ctx_variant(c)
        ctx = f'{{"course_id": "{course_id}", "org_id": "{org_id}", "enterprise_uuid": ""}}'
        return _Out(
            f'{{"name": "{name}", "context": {ctx}, "username": "", "session": "", "ip": "", "agent": "", '
            f'"host": "", "referer": "", "accept_language": "", "event": {event}, \x01, '
            f'"event_type": "{name}", "event_source": "task", "page": null}}',
            org,
            None,
            None,
        )


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


def _largest_remainder(total: int, weights: np.ndarray) -> list[int]:
    raw = weights / weights.sum() * total
    base = np.floor(raw).astype(int)
    rest = total - int(base.sum())
    for i in np.argsort(-(raw - base), kind="stable")[:rest]:
        base[i] += 1
    return base.tolist()


def _gzip_bytes(data: bytes) -> bytes:
    if _igzip is not None:
        return _igzip.compress(data, compresslevel=2, mtime=0)  # level 3 is 2x slower for 5%
    return _gzip.compress(data, compresslevel=6, mtime=0)  # pragma: no cover


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------
def _generate(out: str, events: int, seed: int, days: int = 1, files: int = 8, start_date: str = "2026-11-02") -> tuple[dict, dict]:
    if events < 0 or days < 1 or files < 1:
        raise ValueError("events must be >= 0, days and files >= 1")
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
    g = _Generator(events, seed, days, files, start)
    for d in range(days):
        for inst in range(files):
            g.run_file(d, inst, root)
    group, iid = g.cms_instance  # a Studio instance that logged nothing that day: an empty file
    g._write_gz(
        root,
        f"logs/tracking/{group}/{iid}/tracking.log-{(start + timedelta(days=1)).strftime('%Y%m%d')}-"
        f"{(g.start_day + 1) * 86400 + g.rnd.randrange(240, 840)}.gz",
        b"",
        0,
    )
    assert not g.pending, "copies left unplaced"
    exp = g.expected()
    tmp = root / "expected.json.tmp"
    tmp.write_text(json.dumps(exp, indent=1) + "\n")
    os.replace(tmp, root / "expected.json")
    intended = {k: {SOURCES[i]: v[i] for i in range(4)} for k, v in g.intended.items()}
    return exp, intended


def generate(out: str, events: int, seed: int, days: int = 1, files: int = 8, start_date: str = "2026-11-02") -> dict:
    """Write a faulty raw tracking-log corpus under `out` and `out/expected.json`; return the
    expected counts. Same arguments give byte-identical files. A previous generated corpus in
    `out` is replaced; any other non-empty `out/logs` is refused (FileExistsError)."""
    return _generate(out, events, seed, days, files, start_date)[0]


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
        "--start-date",
        default="2026-11-02",
        help="first day of traffic, YYYY-MM-DD; files are named by their rotation date, the day after (default: 2026-11-02)",
    )
