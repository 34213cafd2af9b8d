"""The world the events happen in, drawn once from the seed: orgs, courses (with their
chapters, sequences, verticals, problems, videos and discussions, on both course-key shapes)
and users (names, ids, IP addresses, browsers, languages, their courses, how active they are,
and the phone each one's mobile events come from).
"""

from __future__ import annotations

import json
import random

import numpy as np

from trackpipe.generator.vocabulary import (
    AGENTS,
    ANDROIDS,
    CARRIERS,
    DISPLAY,
    FIRST,
    IPHONES,
    LANGS,
    LAST,
    LMS,
    MFE,
    ORGS,
    SUBJECTS,
    TIMEZONES,
)

USERS, COURSES = 50_000, 200


def quote(s: str) -> str:
    """JSON string literal, ASCII-only, the way edx-platform's json.dumps writes it."""
    return json.dumps(s)


class Course:
    """A course: its key (new ``course-v1:`` or old Org/Course/Run shape), its URLs and its blocks."""

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


class World:
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
        self.agents_q = [quote(a) for a in AGENTS]
        self.langs_q = [quote(a) for a in LANGS]
        self._mobile = {}

    @staticmethod
    def _course(rnd: random.Random, org: str, v1: bool) -> Course:
        c = Course()
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
            c.problems.append((h, block_key(c, "problem", h), quote(rnd.choice(DISPLAY).format(n=i + 1))))
        c.videos = []
        for _ in range(rnd.randrange(12, 35)):
            h = hx()
            vid = h if c.v1 else f"i4x-{org}-{c.code.replace('.', '_')}-video-{h}"
            yt = "".join(rnd.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") for _ in range(11))
            c.videos.append((h, vid, block_key(c, "video", h), yt, rnd.randrange(180, 1500)))
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
        m = self._mobile[u] = (quote(agent), app, client)
        return m


def block_key(c: Course, kind: str, h: str) -> str:
    """The usage key of block `h` of `kind` in `c`, in the shape of the course's key."""
    if c.v1:
        return f"block-v1:{c.org}+{c.code}+{c.run}+type@{kind}+block@{h}"
    return f"i4x://{c.org}/{c.code}/{kind}/{h}"


def _uuid(r: random.Random) -> str:
    h = f"{r.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"
