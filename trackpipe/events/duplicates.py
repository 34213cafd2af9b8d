"""The duplicate rule over compact fingerprint records. No Beam here.

Deduplication never looks at whole events: each parsed line is reduced to a 69-byte
fingerprint record (FP_DTYPE). Records are sharded by client session (by identity when the event
has no session), so a shard holds every event of its sessions, and `decide` resolves one shard:

- Records with the same identity are ordered by (received_at, time, digest of the raw line,
  file, line): the first is kept. The order depends only on the data, so the result never
  depends on file order, bundle order, runner or worker count.
- A later record is an `exact` copy when its exact fingerprint (identity + time + received_at)
  equals a kept record's, whatever its source.
- Otherwise, for client-side sources, it is a `client_resend` of a kept record when its `time`
  lies within the window of that record's `time` AND no other event of the same session (same
  user and session, any source, a different identity) lies strictly between the two in `time`.
  A double-fired handler or a re-sent POST has nothing of its client in between; a learner who
  submits again, or comes back to a video, did something else first. Events without a session
  (no `session`, no mobile client id) keep the window rule alone. When several kept records
  qualify, the earliest in the order above is the one.
- Otherwise it is a separate, real event and is kept too. Copies are compared with kept
  records only: a copy near a *dropped* copy but outside every kept record's window is new.

Identity covers `username`, `session` and `context`, which the session key is made of, so every
identity group lies whole inside one session, hence inside one shard.
"""

from __future__ import annotations

import bisect

import numpy as np

FP_DTYPE = np.dtype(
    [
        ("id_hi", "<u8"),
        ("id_lo", "<u8"),
        ("ex_hi", "<u8"),
        ("ex_lo", "<u8"),
        ("recv", "<i8"),
        ("time", "<i8"),
        ("tie", "<u8"),
        ("row", "<i4"),
        ("client", "u1"),
        ("sess", "<u8"),  # digest of the client session (trackpipe.events.parse.session_key_of); 0: none
    ]
)

KEEP, EXACT, CLIENT_RESEND = 0, 1, 2
KIND_NAMES = {EXACT: "exact", CLIENT_RESEND: "client_resend"}

# One row per record whose fate is not "kept alone": kept records that absorbed copies
# (kind KEEP, copies > 1) and removed records (kind EXACT / CLIENT_RESEND, copies 0).
DECISION_DTYPE = np.dtype(
    [
        ("row", "<i4"),
        ("kind", "u1"),
        ("copies", "<i4"),
        ("kept_hi", "<u8"),  # exact fingerprint of the kept record (its event_id)
        ("kept_lo", "<u8"),
        ("kept_recv", "<i8"),  # received_at of the kept record (its dt)
        ("gap", "<i8"),  # time of this record minus time of the kept one, µs
    ]
)


def shard_of(records: np.ndarray, shards: int) -> np.ndarray:
    """Shard index of each record: a stable function of its session (of its identity when it
    has none), so every event of a session meets the others in one shard."""
    key = np.where(records["sess"] != 0, records["sess"], records["id_hi"])
    return (key % np.uint64(shards)).astype(np.int64)


def decide(parts: list[tuple[str, np.ndarray]], window_us: int) -> dict[str, np.ndarray]:
    """Resolve duplicates among records of one shard.

    `parts` holds (chunk key, records) pairs; chunk keys sort like (file path, chunk number),
    so (chunk key, row) orders lines like (file, line number). Returns chunk key -> decisions.
    """
    parts = sorted(parts, key=lambda p: p[0])
    keys = [key for key, _ in parts]
    recs = np.concatenate([records for _, records in parts]) if parts else np.empty(0, FP_DTYPE)
    if len(recs) < 2:
        return {}
    chunk_idx = np.concatenate([np.full(len(r), i, np.int32) for i, (_, r) in enumerate(parts)])
    order = np.lexsort((recs["row"], chunk_idx, recs["tie"], recs["time"], recs["recv"], recs["id_lo"], recs["id_hi"]))
    recs, chunk_idx = recs[order], chunk_idx[order]
    same = (recs["id_hi"][1:] == recs["id_hi"][:-1]) & (recs["id_lo"][1:] == recs["id_lo"][:-1])
    if not same.any():
        return {}
    sessions = Sessions(recs)
    # Start and end of every run of equal identities longer than one record.
    boundaries = np.flatnonzero(np.diff(np.concatenate(([0], same.view(np.int8), [0]))))
    out: dict[int, list] = {}
    for start, stop in zip(boundaries[0::2], boundaries[1::2] + 1):
        _decide_group(recs, chunk_idx, int(start), int(stop), window_us, sessions, out)
    return {keys[c]: np.array(rows, dtype=DECISION_DTYPE) for c, rows in out.items()}


class Sessions:
    """The time line of every session in a shard: how many of its events lie strictly between
    two instants, answered by binary search over the session's sorted times."""

    def __init__(self, recs: np.ndarray):
        with_session = recs[recs["sess"] != 0]
        order = np.lexsort((with_session["time"], with_session["sess"]))
        self._sess = with_session["sess"][order]
        self._time = with_session["time"][order]

    def between(self, sess: int, low: int, high: int) -> int:
        """Events of session `sess` with low < time < high."""
        first = np.searchsorted(self._sess, sess, "left")
        last = np.searchsorted(self._sess, sess, "right")
        times = self._time[first:last]
        return int(np.searchsorted(times, high, "left") - np.searchsorted(times, low, "right")) if high > low else 0


def _decide_group(recs, chunk_idx, start: int, stop: int, window_us: int, sessions: Sessions, out: dict) -> None:
    group = recs[start:stop].tolist()  # tuples in FP_DTYPE field order
    sess = group[0][9]  # one identity, one session
    own_times = sorted(rec[5] for rec in group) if sess else None
    kept: list[int] = []  # positions (in group) of kept records
    by_exact: dict[tuple[int, int], int] = {}
    kept_times: list[tuple[int, int]] = []  # (time, position) of kept client records, sorted
    copies: dict[int, int] = {}
    removed: list[tuple[int, int, int]] = []  # (position, kind, kept position)
    for pos, (_, _, ex_hi, ex_lo, _, time, _, _, client, _) in enumerate(group):
        match = by_exact.get((ex_hi, ex_lo))
        kind = EXACT
        if match is None and client:
            match = _resent_of(group, kept_times, time, window_us, sess, own_times, sessions)
            kind = CLIENT_RESEND
        if match is None:
            kept.append(pos)
            by_exact.setdefault((ex_hi, ex_lo), pos)
            if client:
                bisect.insort(kept_times, (time, pos))
            continue
        copies[match] = copies.get(match, 1) + 1
        removed.append((pos, kind, match))
    for pos, n in copies.items():
        rec = group[pos]
        _emit(out, chunk_idx[start + pos], (rec[7], KEEP, n, rec[2], rec[3], rec[4], 0))
    for pos, kind, match in removed:
        rec, kept_rec = group[pos], group[match]
        _emit(out, chunk_idx[start + pos], (rec[7], kind, 0, kept_rec[2], kept_rec[3], kept_rec[4], rec[5] - kept_rec[5]))


def _resent_of(group, kept_times, time: int, window_us: int, sess: int, own_times, sessions: Sessions) -> int | None:
    """The earliest-kept (smallest position) kept record this one is a re-send of: within the
    window, and (with a session) nothing else of the session strictly between the two."""
    lo = bisect.bisect_left(kept_times, (time - window_us, -1))
    hi = bisect.bisect_right(kept_times, (time + window_us, 1 << 62))
    for pos in sorted(pos for _, pos in kept_times[lo:hi]):
        if not sess:
            return pos
        low, high = sorted((group[pos][5], time))
        same = bisect.bisect_left(own_times, high) - bisect.bisect_right(own_times, low) if high > low else 0
        if sessions.between(sess, low, high) - same == 0:
            return pos
    return None


def _emit(out: dict, chunk: int, row: tuple) -> None:
    out.setdefault(int(chunk), []).append(row)
