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
  event whose time is within 5 s of the kept copy of its identity is a ``client_resend``. Kept
  copy = earliest by (received_at, time).

The expected counts are not bookkeeping of what was meant to be injected: every event line
carries a fingerprint of its identity (sha256 of the line rendered without its time fields),
and the rules above are applied to those fingerprints after writing, so the numbers stay
exact even if two independently drawn events happened to collide. ``_generate()`` also returns
what was injected on purpose; the tests check that both agree (no accidental duplicates).
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING

import numpy as np

from trackpipe.generator.clock import DAY_US, SEC_US
from trackpipe.generator.event_families import S_BROWSER, S_MOBILE, SOURCES, STREAMS

if TYPE_CHECKING:
    from trackpipe.generator.generate import CorpusGenerator

RESEND_WINDOW_US = 5 * SEC_US


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

    def record(self, ident, shape_code, tp, recv, s, stream, org):
        """One event line: identity fingerprint, time shape (+32 if `timestamp`), the instant its
        time parses to, received_at (-1: none), source, stream and org (-1: none)."""
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
