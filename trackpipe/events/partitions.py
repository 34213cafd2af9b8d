"""A staged chunk plus its dedup decisions -> the rows of each output partition. No Beam here.

Everything is columnar (Arrow and NumPy); no per-row Python except where the rows are few
(removed copies) or the loop is over distinct values (orgs).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from trackpipe.events.duplicates import DECISION_DTYPE, KEEP, KIND_NAMES
from trackpipe.events.orgs import package_name
from trackpipe.events.schema import DUPLICATES_SCHEMA, OUTPUT_COLUMNS, STREAM_RESEARCH, TS

if TYPE_CHECKING:  # the settings object only; the rules never import the application
    from trackpipe.config import OrgsConfig
from trackpipe.events.times import US_PER_DAY, day_to_date

# Examples of orgs left out of packages kept per reason (for the manifest and the report), and
# how much of each.
MAX_EXAMPLES = 5
EXAMPLE_CHARS = 100

PACKAGE_SCHEMA = pa.schema(
    [
        pa.field("package", pa.string()),
        pa.field("day", pa.int32()),
        pa.field("received_at", pa.int64()),
        pa.field("time", pa.int64()),
        pa.field("event_id", pa.string()),
        pa.field("raw", pa.binary()),
    ]
)


class Cutoffs(NamedTuple):
    """The first day (days since the epoch) each output keeps under the retention config;
    None: every day. A run never writes a day that retention would remove at once."""

    warehouse: int | None = None
    duplicates: int | None = None  # never earlier than the warehouse's: an audit row needs its row
    packages: int | None = None

    @classmethod
    def of(cls, retention, today: int) -> Cutoffs:
        """From a RetentionConfig (`<kind>_days`: keep that many days, today included)."""

        def first(days):
            return None if days is None else today - days + 1

        warehouse = first(retention.warehouse_days)
        return cls(warehouse, _later(warehouse, first(retention.duplicates_days)), _later(warehouse, first(retention.packages_days)))


def _later(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def since(days: np.ndarray, first: int | None) -> np.ndarray:
    """Which of `days` a retention cutoff keeps."""
    return np.ones(len(days), dtype=bool) if first is None else days >= first


def decisions_from(blobs: list[bytes]) -> np.ndarray:
    if not blobs:
        return np.empty(0, DECISION_DTYPE)
    return np.concatenate([np.frombuffer(b, dtype=DECISION_DTYPE) for b in blobs])


def decisions_in(decisions: np.ndarray, offset: int, rows: int) -> np.ndarray:
    """The decisions about rows offset..offset+rows-1, renumbered from 0 (for one batch)."""
    picked = decisions[(decisions["row"] >= offset) & (decisions["row"] < offset + rows)].copy()
    picked["row"] -= offset
    return picked


def apply_decisions(rows: int, decisions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """-> (keep mask, copies per row)."""
    keep = np.ones(rows, dtype=bool)
    copies = np.ones(rows, dtype=np.int32)
    kept = decisions[decisions["kind"] == KEEP]
    copies[kept["row"]] = kept["copies"]
    keep[decisions["row"][decisions["kind"] != KEEP]] = False
    return keep, copies


def days_of(table: pa.Table, column: str = "received_at") -> np.ndarray:
    """UTC day number (days since the epoch) of each row's timestamp."""
    us = table.column(column).cast(pa.int64()).to_numpy(zero_copy_only=False)
    return us // US_PER_DAY


def selected(days: np.ndarray, wanted: frozenset[int] | None) -> np.ndarray:
    if wanted is None:
        return np.ones(len(days), dtype=bool)
    return np.isin(days, np.fromiter(wanted, dtype=np.int64, count=len(wanted)))


def value_counts(table: pa.Table, column: str) -> list[tuple[str, int]]:
    counted = pc.value_counts(table.column(column)).to_pylist()
    return [(item["values"], item["counts"]) for item in counted]


def _group_bounds(*keys: np.ndarray) -> Iterator[tuple[int, int]]:
    """(start, stop) of runs of equal values over already sorted key arrays."""
    n = len(keys[0])
    if n == 0:
        return
    change = np.zeros(n - 1, dtype=bool)
    for key in keys:
        change |= key[1:] != key[:-1]
    starts = np.concatenate(([0], np.flatnonzero(change) + 1))
    stops = np.concatenate((starts[1:], [n]))
    yield from zip(starts.tolist(), stops.tolist())


def kept_partitions(table: pa.Table, keep: np.ndarray, copies: np.ndarray, in_range: np.ndarray) -> Iterator[tuple[str, str, pa.Table]]:
    """Yield (stream, date, rows) for the kept rows of the selected days, with the output
    columns, rows in input (file, line) order: a pure function of the chunk, so reruns write
    the same files. Each partition is one filter pass (no sort, no full-table copy)."""
    mask = keep & in_range
    if not mask.any():
        return
    table = table.append_column("copies", pa.array(copies, pa.int32()))
    streams = table.column("stream").to_numpy(zero_copy_only=False)
    days = days_of(table)
    for stream in sorted(set(streams[mask].tolist())):
        in_stream = mask & (streams == stream)
        for day in sorted(set(days[in_stream].tolist())):
            rows = table.filter(pa.array(in_stream & (days == day))).select(OUTPUT_COLUMNS)
            yield stream, day_to_date(day), rows


def duplicate_rows(
    table: pa.Table, decisions: np.ndarray, wanted: frozenset[int] | None, line_offset: int = 0, first_day: int | None = None
) -> Iterator[tuple[str, pa.Table]]:
    """Yield (date of the kept row, audit rows) for removed lines whose kept row is on a
    selected day (and not before `first_day`, the audit's retention). `line_offset`: lines of
    the file before the range the chunk was read from."""
    removed = decisions[decisions["kind"] != KEEP]
    if not len(removed):
        return
    kept_days = removed["kept_recv"] // US_PER_DAY
    removed = removed[selected(kept_days, wanted) & since(kept_days, first_day)]
    kept_days = removed["kept_recv"] // US_PER_DAY
    if not len(removed):
        return
    order = np.lexsort((removed["row"], kept_days))
    removed, kept_days = removed[order], kept_days[order]
    rows = pa.array(removed["row"].astype(np.int64))
    picked = table.select(["event_source", "name", "time", "received_at", "source_file", "line_number"]).take(rows)
    event_ids = [format((int(hi) << 64) | int(lo), "032x") for hi, lo in zip(removed["kept_hi"], removed["kept_lo"])]
    kinds = [KIND_NAMES[int(k)] for k in removed["kind"]]
    audit = pa.Table.from_arrays(
        [
            pa.array(event_ids, pa.string()),
            pa.array(kinds, pa.string()),
            picked.column("event_source"),
            picked.column("name"),
            picked.column("time").cast(TS),
            picked.column("received_at").cast(TS),
            pa.array(removed["gap"] / 1_000_000.0, pa.float64()),
            picked.column("source_file"),
            pc.add(picked.column("line_number"), line_offset) if line_offset else picked.column("line_number"),
        ],
        schema=DUPLICATES_SCHEMA,
    )
    for start, stop in _group_bounds(kept_days):
        yield day_to_date(kept_days[start]), audit.slice(start, stop - start)


def research_mask(table: pa.Table) -> np.ndarray:
    return table.column("stream").to_numpy(zero_copy_only=False) == STREAM_RESEARCH


def package_rows(
    table: pa.Table, keep: np.ndarray, in_range: np.ndarray, orgs: OrgsConfig
) -> tuple[pa.Table, dict[str, int], dict[str, list[str]]]:
    """Rows for research packages, one per (package, event), sorted by (package, day,
    received_at, time, event_id); counts of what was left out and why; and a few examples of
    orgs left out as unsafe (the smallest values, so the choice depends only on the data)."""
    candidates = keep & in_range & (table.column("stream").to_numpy(zero_copy_only=False) == STREAM_RESEARCH)
    left_out = {}
    left_out_examples: dict[str, list[str]] = {}
    org_col = table.column("org_id")
    has_org = candidates & ~org_col.is_null().to_numpy(zero_copy_only=False)
    left_out["no_org"] = int((candidates & ~has_org).sum())
    export = table.column("export").to_numpy(zero_copy_only=False)
    left_out["export_false"] = int((has_org & ~export).sum())
    eligible = has_org & export
    if orgs.exclude_hosts and eligible.any():
        hosts = table.column("host").to_pylist()
        excluded = np.array([bool(e) and orgs.host_excluded(h) for e, h in zip(eligible, hosts)], dtype=bool)
        left_out["excluded_host"] = int(excluded.sum())
        eligible &= ~excluded
    rows: list[np.ndarray] = []
    names: list[str] = []
    unlisted = unsafe = 0
    unsafe_examples: list[str] = []
    indices = np.flatnonzero(eligible)
    if len(indices):
        encoded = pc.take(org_col, pa.array(indices)).dictionary_encode().combine_chunks()
        codes = encoded.indices.to_numpy()
        for code, org in enumerate(encoded.dictionary.to_pylist()):
            members = indices[codes == code]
            if package_name(org) is None:  # an org that cannot name a folder: no package (the warehouse keeps it)
                unsafe += len(members)
                unsafe_examples.append(org[:EXAMPLE_CHARS])
                continue
            packages = orgs.package_names(org)
            if not packages:
                unlisted += len(members)
            for package in packages:
                rows.append(members)
                names.extend([package] * len(members))
    left_out["unlisted_org"] = unlisted
    left_out["unsafe_org"] = unsafe
    if unsafe_examples:
        left_out_examples["unsafe_org"] = sorted(set(unsafe_examples))[:MAX_EXAMPLES]
    if not rows:
        return PACKAGE_SCHEMA.empty_table(), left_out, left_out_examples
    take = pa.array(np.concatenate(rows))
    picked = table.select(["received_at", "time", "event_id", "raw"]).take(take)
    received = picked.column("received_at").cast(pa.int64())
    result = pa.Table.from_arrays(
        [
            pa.array(names, pa.string()),
            pa.array(received.to_numpy() // US_PER_DAY, pa.int32()),
            received,
            picked.column("time").cast(pa.int64()),
            picked.column("event_id"),
            picked.column("raw"),
        ],
        schema=PACKAGE_SCHEMA,
    )
    return result.take(package_order(result, with_package=True)), left_out, left_out_examples


def package_order(rows: pa.Table, with_package: bool = False) -> np.ndarray:
    """Row order of package rows: by (package, day,) received_at, time, event_id. An integer
    lexsort (event ids are fixed-width hex, so they sort as bytes): several times faster than
    a multi-column sort with string comparisons."""
    keys = [
        np.array(rows.column("event_id").to_pylist(), dtype="S32"),
        rows.column("time").to_numpy(),
        rows.column("received_at").to_numpy(),
    ]
    if with_package:
        packages = rows.column("package").dictionary_encode().combine_chunks()
        # dictionary codes follow first appearance; rank them by name so the order is by name
        rank = np.argsort(np.argsort(np.array(packages.dictionary.to_pylist(), dtype=object)))
        keys += [rows.column("day").to_numpy(), rank[packages.indices.to_numpy()]]
    return np.lexsort(keys)


def package_groups(rows: pa.Table) -> Iterator[tuple[str, int, int, int]]:
    """(package, day, start, stop) of the sorted package rows."""
    packages = np.asarray(rows.column("package").to_pylist(), dtype=object)
    days = rows.column("day").to_numpy()
    for start, stop in _group_bounds(packages, days):
        yield packages[start], int(days[start]), start, stop
