"""The duplicate rule over compact fingerprint records. No Beam here.

Deduplication never looks at whole events: each parsed line is reduced to a ~60-byte
fingerprint record (FP_DTYPE). Records are sharded by identity, and `decide` resolves one shard:

- Records with the same identity are ordered by (received_at, time, digest of the raw line,
  file, line): the first is kept. The order depends only on the data, so the result never
  depends on file order, bundle order, runner or worker count.
- A later record is an `exact` copy when its exact fingerprint (identity + time + received_at)
  equals a kept record's, whatever its source.
- Otherwise, for client-side sources, it is a `client_resend` when its `time` lies within the
  window of a kept record's `time` (the earliest such kept record in the order above).
- Otherwise it is a separate, real event and is kept too. Copies are compared with kept
  records only: a copy near a *dropped* copy but outside every kept record's window is new.
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


def shard_of(id_hi: np.ndarray, shards: int) -> np.ndarray:
    """Shard index of each record: a stable function of the identity fingerprint."""
    return (id_hi % np.uint64(shards)).astype(np.int64)


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
    # Start and end of every run of equal identities longer than one record.
    boundaries = np.flatnonzero(np.diff(np.concatenate(([0], same.view(np.int8), [0]))))
    out: dict[int, list] = {}
    for start, stop in zip(boundaries[0::2], boundaries[1::2] + 1):
        _decide_group(recs, chunk_idx, int(start), int(stop), window_us, out)
    return {keys[c]: np.array(rows, dtype=DECISION_DTYPE) for c, rows in out.items()}


def _decide_group(recs, chunk_idx, start: int, stop: int, window_us: int, out: dict) -> None:
    group = recs[start:stop].tolist()  # tuples in FP_DTYPE field order
    kept: list[int] = []  # positions (in group) of kept records
    by_exact: dict[tuple[int, int], int] = {}
    kept_times: list[tuple[int, int]] = []  # (time, position) of kept client records, sorted
    copies: dict[int, int] = {}
    removed: list[tuple[int, int, int]] = []  # (position, kind, kept position)
    for pos, (_, _, ex_hi, ex_lo, _, time, _, _, client) in enumerate(group):
        match = by_exact.get((ex_hi, ex_lo))
        kind = EXACT
        if match is None and client:
            match = _within_window(kept_times, time, window_us)
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


def _within_window(kept_times: list[tuple[int, int]], time: int, window_us: int) -> int | None:
    """The earliest-kept (smallest position) kept record whose time is within the window."""
    lo = bisect.bisect_left(kept_times, (time - window_us, -1))
    hi = bisect.bisect_right(kept_times, (time + window_us, 1 << 62))
    if lo >= hi:
        return None
    return min(pos for _, pos in kept_times[lo:hi])


def _emit(out: dict, chunk: int, row: tuple) -> None:
    out.setdefault(int(chunk), []).append(row)
