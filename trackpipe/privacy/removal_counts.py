"""What a `forget` or an `expire` takes out of an output, counted the way the run manifest counts,
and the manifest brought up to date with it. No I/O here.

`_manifest.json` describes the latest run's days and what its files hold; the report checks the
files against it. When rows leave those files, the manifest is rewritten so both still agree and
its reconciliation still balances:

    lines_read = blank_lines + rejected + duplicates_removed + rows_written + outside_selected_dates
                 + retired + expired + forgotten

- `forget` moves the removed rows, duplicates-audit lines and rejected lines of the run's days
  out of `rows_written`, `duplicates_removed` and `rejected` into `forgotten` (a new term; the
  manifest also lists the retirement records in `retirements`);
- `expire` moves the rows and audit lines of the days it removes into `expired` (the term a run
  already uses for days retention removes at once; the manifest lists them in `expirations`).
Partitions, package entries and `bytes_written` follow the files. Rows of days that are not the
latest run's (older runs) are not in the manifest; the commands' own records count them.
The run records in `_runs/` are left as they were: they say what each run wrote at the time.
"""

from __future__ import annotations

import copy
from collections import Counter, defaultdict
from dataclasses import dataclass, field


@dataclass
class PartitionChange:
    """One warehouse partition (stream, dt) or duplicates-audit day (stream None)."""

    rows: int = 0  # rows removed
    files_changed: int = 0  # files rewritten or deleted
    files_after: list[str] | None = None  # file names left; None: unchanged list
    bytes_after: int | None = None  # total size after; None: unknown
    gone: bool = False  # the whole folder is removed


@dataclass
class Removal:
    warehouse: dict[tuple[str, str], PartitionChange] = field(default_factory=dict)
    rows_by_source: Counter = field(default_factory=Counter)  # of the manifest's days only
    duplicates: dict[str, PartitionChange] = field(default_factory=dict)
    audit_kind: Counter = field(default_factory=Counter)  # of the manifest's days only
    audit_source: Counter = field(default_factory=Counter)
    audit_source_kind: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    audit_name: Counter = field(default_factory=Counter)
    rejects: Counter = field(default_factory=Counter)  # by reason
    reject_files: int = 0
    rejects_bytes: int | None = None
    packages: dict[str, dict] = field(default_factory=dict)  # rel -> {date, events_removed, action, events, bytes, sha256}
    runs: list[str] = field(default_factory=list)  # run ids whose records are removed (expire)

    def partition(self, stream: str, dt: str) -> PartitionChange:
        return self.warehouse.setdefault((stream, dt), PartitionChange())

    def audit_day(self, dt: str) -> PartitionChange:
        return self.duplicates.setdefault(dt, PartitionChange())

    def add_audit_stats(self, kinds, sources, names) -> None:
        for kind, source, name in zip(kinds, sources, names):
            self.audit_kind[kind] += 1
            self.audit_source[source] += 1
            self.audit_source_kind[source][kind] += 1
            self.audit_name[name] += 1

    @property
    def empty(self) -> bool:
        return not (
            any(p.rows or p.files_changed or p.gone for p in self.warehouse.values())
            or any(p.rows or p.files_changed or p.gone for p in self.duplicates.values())
            or self.rejects
            or self.reject_files
            or self.packages
            or self.runs
        )

    def row_total(self) -> int:
        return sum(p.rows for p in self.warehouse.values())

    def audit_total(self) -> int:
        return sum(p.rows for p in self.duplicates.values())

    def summary(self) -> dict:
        """Rows and files changed per output, for the commands' records."""
        warehouse: dict = defaultdict(dict)
        for (stream, dt), p in sorted(self.warehouse.items()):
            warehouse[stream][dt] = {"rows": p.rows, "files": p.files_changed} | ({"partition_removed": True} if p.gone else {})
        return {
            "warehouse": dict(warehouse),
            "duplicates": {
                dt: {"rows": p.rows, "files": p.files_changed} | ({"partition_removed": True} if p.gone else {})
                for dt, p in sorted(self.duplicates.items())
            },
            "rejects": {"lines": sum(self.rejects.values()), "files": self.reject_files, "by_reason": dict(sorted(self.rejects.items()))},
            "packages": {rel: {k: v for k, v in entry.items() if k != "sha256"} for rel, entry in sorted(self.packages.items())},
        }


def _sub(counts: dict, key, n: int) -> None:
    left = counts.get(key, 0) - n
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


def updated_manifest(manifest: dict, removal: Removal, term: str, record_id: str) -> dict:
    """The manifest with `removal` taken out of its counts and added to reconciliation `term`
    (`forgotten` or `expired`); `record_id` goes into `retirements` or `expirations`."""
    m = copy.deepcopy(manifest)
    days = set(m.get("dates") or [])
    moved = 0
    listed = {(p["stream"], p["dt"]): p for p in m.get("partitions") or []}
    rows_written = m.setdefault("rows_written", {})
    written = m.get("bytes_written") or {}
    for (stream, dt), change in removal.warehouse.items():
        part = listed.get((stream, dt))
        if part is None:
            continue  # a day of an older run
        rows = min(change.rows, part.get("rows", 0))
        moved += rows
        part["rows"] = part.get("rows", 0) - rows
        _sub(rows_written.setdefault(stream, {}), dt, rows)
        sizes = written.get("warehouse", {}).get(stream, {})
        if change.gone or change.files_after == []:
            part["files"] = []
            sizes.pop(dt, None)
        else:
            if change.files_after is not None:
                part["files"] = sorted(change.files_after)
            if change.bytes_after is not None and dt in sizes:
                sizes[dt] = change.bytes_after
    m["partitions"] = [p for p in m.get("partitions") or [] if p.get("files")]
    for source, n in removal.rows_by_source.items():
        _sub(m.setdefault("rows_written_by_source", {}), source, n)
    m["rows_written_total"] = sum(sum(d.values()) for d in rows_written.values())

    dups = m.setdefault("duplicates_removed", {})
    for dt, change in removal.duplicates.items():
        if dt not in days:
            continue
        moved += change.rows
        _sub(dups.setdefault("by_dt", {}), dt, change.rows)
        sizes = written.get("duplicates", {})
        if change.gone or change.files_after == []:
            sizes.pop(dt, None)
        elif change.bytes_after is not None and dt in sizes:
            sizes[dt] = change.bytes_after
    for kind, n in removal.audit_kind.items():
        _sub(dups.setdefault("by_kind", {}), kind, n)
    for source, n in removal.audit_source.items():
        _sub(dups.setdefault("by_source", {}), source, n)
    for source, kinds in removal.audit_source_kind.items():
        by = dups.setdefault("by_source_and_kind", {}).setdefault(source, {})
        for kind, n in kinds.items():
            _sub(by, kind, n)
        if not by:
            dups["by_source_and_kind"].pop(source, None)
    names = {name: n for name, n in dups.get("top_names") or []}
    for name, n in removal.audit_name.items():
        if name in names:
            _sub(names, name, n)
    dups["top_names"] = [[name, n] for name, n in sorted(names.items(), key=lambda kv: (-kv[1], kv[0]))]
    dups["total"] = sum((dups.get("by_kind") or {}).values())

    rejected = m.setdefault("rejected", {})
    for reason, n in removal.rejects.items():
        moved += min(n, rejected.get(reason, 0))
        _sub(rejected, reason, n)
    m["rejected_total"] = sum(rejected.values())
    if removal.rejects_bytes is not None and "rejects" in written:
        written["rejects"] = removal.rejects_bytes

    package = m.get("research_package")
    if package is not None:
        entries = []
        for entry in package.get("files") or []:
            change = removal.packages.get(entry.get("path"))
            if change is None:
                entries.append(entry)
                continue
            delta = -int(entry.get("bytes") or 0)
            if change["action"] != "deleted":
                entry = {**entry, "events": change["events"], "bytes": change["bytes"], "sha256": change["sha256"]}
                entries.append(entry)
                delta += change["bytes"]
            by_day = written.get("packages", {})
            if entry.get("date") in by_day:
                by_day[entry["date"]] += delta
                if by_day[entry["date"]] <= 0:
                    by_day.pop(entry["date"])
        package["files"] = entries

    rec = m.setdefault("reconciliation", {})
    rec["rows_written"] = m["rows_written_total"]
    rec["duplicates_removed"] = dups["total"]
    rec["rejected"] = m["rejected_total"]
    rec.pop("balanced", None)
    rec[term] = rec.get(term, 0) + moved
    m[term] = rec[term]
    rec["balanced"] = sum(v for k, v in rec.items() if k != "lines_read") == rec.get("lines_read", 0)
    records = "retirements" if term == "forgotten" else "expirations"
    m[records] = [*(m.get(records) or []), record_id]
    return m
