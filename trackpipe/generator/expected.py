"""The expected counts (expected.json): what trackpipe must find in the corpus.

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
  event whose time is within 5 s of a kept copy of its identity is a ``client_resend``, unless
  another event of the same session (``username`` + ``session``; for mobile ``username`` + the
  client's device id) with another identity lies strictly between the two in time. Kept copy =
  earliest by (received_at, time).

The expected counts are not bookkeeping of what was meant to be injected: every event line
carries a fingerprint of its identity (sha256 of the line rendered without its time fields),
and the rules above are applied to those fingerprints after writing, so the numbers stay
exact even if two independently drawn events happened to collide. ``_generate()`` also returns
what was injected on purpose; the tests check that both agree (no accidental duplicates).
"""

from __future__ import annotations

import bisect
import json
from array import array
from hashlib import blake2b
from typing import TYPE_CHECKING

import numpy as np
import orjson

from trackpipe.generator.clock import DAY_US, SEC_US
from trackpipe.generator.event_families import S_BROWSER, S_MOBILE, SOURCES, STREAMS

if TYPE_CHECKING:
    from trackpipe.generator.generate import CorpusGenerator

RESEND_WINDOW_US = 5 * SEC_US


def session_of(tpl: str) -> int:
    """The session a rendered event belongs to, read from the event itself as the rule defines
    it (a 64-bit digest; 0: no session): the trimmed `username` with a non-empty `session`, else
    with `context.client_id` or `context.client.device.id`."""
    text = tpl.replace("\x01", '"_time": 0').replace("\x02", "")
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:  # raw control characters or lone surrogates, as some events carry
        obj = json.loads(text, strict=False)
    username = obj.get("username")
    username = username.strip() if isinstance(username, str) else ""
    session = obj.get("session")
    if isinstance(session, str) and session:
        key = "s\x00" + username + "\x00" + session
    else:
        context = obj.get("context") if isinstance(obj.get("context"), dict) else {}
        client = context.get("client_id")
        if not (isinstance(client, str) and client):
            device = (context.get("client") or {}).get("device") if isinstance(context.get("client"), dict) else None
            client = device.get("id") if isinstance(device, dict) else None
        if not (isinstance(client, str) and client):
            return 0
        key = "c\x00" + username + "\x00" + client
    return int.from_bytes(blake2b(key.encode("utf-8", "surrogateescape"), digest_size=8).digest(), "little") or 1


class ExpectedCounts:
    """The fingerprints and facts of every event line, and the counts the rules give."""

    def __init__(self, gen: CorpusGenerator):
        self.gen = gen
        self.r_id = bytearray()
        self.r_shape = array("b")
        self.r_t = array("q")
        self.r_r = array("q")
        self.r_src = array("b")
        self.r_stream = array("b")
        self.r_org = array("h")
        self.r_sess = array("Q")

    def record(self, ident, shape_code, tp, recv, s, stream, org, sk):
        """One event line: identity fingerprint, time shape (+32 if `timestamp`), the instant its
        time parses to, received_at (-1: none), source, stream, org (-1: none) and session
        (session_of; 0: none)."""
        self.r_sess.append(sk)
        self.r_id += ident
        self.r_shape.append(shape_code)
        self.r_t.append(tp)
        self.r_r.append(recv)
        self.r_src.append(s)
        self.r_stream.append(stream)
        self.r_org.append(org)

    def counts(self) -> dict:
        """The content of expected.json."""
        g = self.gen
        n = len(self.r_t)
        ids = np.frombuffer(bytes(self.r_id), dtype="<u8").reshape(-1, 2) if n else np.zeros((0, 2), np.uint64)
        t = np.frombuffer(self.r_t, dtype=np.int64) if n else np.zeros(0, np.int64)
        r = np.frombuffer(self.r_r, dtype=np.int64) if n else np.zeros(0, np.int64)
        src = np.frombuffer(self.r_src, dtype=np.int8) if n else np.zeros(0, np.int8)
        stream = np.frombuffer(self.r_stream, dtype=np.int8) if n else np.zeros(0, np.int8)
        org = np.frombuffer(self.r_org, dtype=np.int16) if n else np.zeros(0, np.int16)
        shape = np.frombuffer(self.r_shape, dtype=np.int8) if n else np.zeros(0, np.int8)
        sess = np.frombuffer(self.r_sess, dtype=np.uint64) if n else np.zeros(0, np.uint64)
        recv = np.where(r >= 0, r, t)
        by_session = np.lexsort((t, sess))  # every line's time, session by session
        sess_sorted, time_sorted = sess[by_session], t[by_session]

        def between(sk: int, low: int, high: int) -> int:
            """Lines of session sk with low < time < high."""
            a, b = np.searchsorted(sess_sorted, sk, "left"), np.searchsorted(sess_sorted, sk, "right")
            times = time_sorted[a:b]
            return int(np.searchsorted(times, high, "left") - np.searchsorted(times, low, "right"))

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
                    sk = int(sess[members[0]])
                    own = sorted(int(t[k]) for k in members)  # the group's own lines never count as "between"
                    anchors: list[int] = []
                    for k in distinct:
                        tk = int(t[k])
                        resent = False
                        for a in anchors:
                            low, high = sorted((int(t[a]), tk))
                            if high - low > RESEND_WINDOW_US:
                                continue
                            same = bisect.bisect_left(own, high) - bisect.bisect_right(own, low) if high > low else 0
                            if not sk or high == low or between(sk, low, high) - same == 0:
                                resent = True
                                break
                        if resent:
                            kept[k] = False
                            dup_resend[s] += 1
                        else:
                            anchors.append(k)
        day = (recv - g.clock.start_us) // DAY_US if n else np.zeros(0, np.int64)
        day0 = int(day.min()) if n else 0
        rows = {}
        for si, name in enumerate(STREAMS):
            sel = kept & (stream == si)
            rows[name] = self._by_day(day[sel], day0)
        org_rows = {}
        research = kept & (stream == 0) & (org >= 0)
        for oi in sorted(set(org[research].tolist())):
            org_rows[g.w.orgs[oi]] = self._by_day(day[research & (org == oi)], day0)
        org_rows = dict(sorted(org_rows.items()))
        return {
            "generator": {"events": g.N, "seed": g.seed, "days": g.D, "files": g.F, "start_date": g.start.isoformat()},
            "files": sorted(g.files.files_meta, key=lambda x: x["path"]),
            "lines_read": g.files.lines_read,
            "blank_lines": g.bad.blank_count,
            "rejected": dict(g.bad.bad_counts),
            "duplicates_removed": {"exact": sum(dup_exact), "client_resend": sum(dup_resend)},
            "duplicates_by_source": {SOURCES[i]: dup_exact[i] + dup_resend[i] for i in range(4)},
            "rows": rows,
            "org_rows": org_rows,
        }

    def _by_day(self, days: np.ndarray, day0: int) -> dict:
        if not len(days):
            return {}
        counts = np.bincount(days - day0)
        return {self.gen.clock.date(self.gen.start_day + day0 + i): int(c) for i, c in enumerate(counts) if c}
