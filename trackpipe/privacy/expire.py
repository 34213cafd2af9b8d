"""`trackpipe expire`: remove what is older than the retention (config `retention:`). No Beam here.

Each `retention.<kind>_days` keeps that many days, today included (null: forever); "today" is
`--today` or the UTC date. The first day kept is the one a run uses (trackpipe.events.partitions.
Cutoffs): the duplicates audit and the packages are never kept longer than the warehouse.
- warehouse partitions of both streams (`warehouse/<stream>/dt=<day>/`) of older days;
- duplicates-audit days (`duplicates/dt=<day>/`);
- research packages with their MANIFEST (by the package's day);
- run records `_runs/<run>.json` and `_runs/<run>.metrics.json`, by the day the run started;
- the same warehouse days in every warehouse named with --warehouse (one transaction per table
  and day, with a bookkeeping row, as a load empties a day).
Under the output's lock, with a journal like forget's (trackpipe.privacy.jobs); the manifest's
counts move to `expired` (trackpipe.privacy.removal_counts); one JSON line per expire that
removed something is appended to `_expirations.jsonl`.
"""

from __future__ import annotations

import json
import re

from trackpipe import storage
from trackpipe.config import STREAMS
from trackpipe.errors import ConfigError
from trackpipe.events.layout import DUPLICATES_DIR, EXPIRATIONS_NAME, MANIFEST_NAME, PACKAGE_DIR, RUNS_DIR, WAREHOUSE_DIR
from trackpipe.events.partitions import Cutoffs
from trackpipe.events.times import date_to_day, day_to_date
from trackpipe.privacy import jobs
from trackpipe.privacy.output_files import column_values, row_count
from trackpipe.privacy.package_files import PACKAGE_FILE, PACKAGE_MANIFEST
from trackpipe.privacy.removal_counts import Removal, updated_manifest
from trackpipe.warehouse.connections import plural, redact
from trackpipe.warehouse.removals import expire_days
from trackpipe.warehouse.snapshots import valid_date

_FOLDER_DAY = re.compile(r"^(?P<folder>.+/dt=(?P<dt>\d{4}-\d{2}-\d{2}))/(?P<name>[^/]+)$")
_PART = re.compile(r"^part-[^/]*\.(parquet|avro)$")
_RUN = re.compile(rf"^{RUNS_DIR}/(?P<run>[^/]+?)(?P<metrics>\.metrics)?\.json$")
_RUN_DAY = re.compile(r"^(\d{4})(\d{2})(\d{2})T")


def expire(
    output: str, config_path: str | None = None, today: str | None = None, warehouses: list[str] | None = None, dry_run: bool = False
) -> str:
    output = jobs.normalise_output(output)
    today = today or jobs.now()[:10]
    if not valid_date(today):
        raise ConfigError(f"--today must be a date YYYY-MM-DD, got {today!r}")
    urls = jobs.check_warehouse_urls(list(warehouses or []))
    jobs.check_output(output)
    job = jobs.new_id()
    owner = f"expire-{job}"
    with jobs.locked(output, owner, finish_journals=not dry_run):
        manifest = jobs.read_manifest(output)
        config, source = jobs.config_for(manifest, config_path)
        retention = config.retention
        keep = _keep_from(retention, today)
        header = f"trackpipe expire{' --dry-run' if dry_run else ''} {job}: today {today}; " + (
            ", ".join(f"{kind} from {day}" for kind, day in keep.items() if day) or "nothing: every retention.*_days is null (keep forever)"
        )
        header += f" ({source})"
        if not any(keep.values()):
            return header
        with jobs.named_warehouses(urls, config, dry_run) as connections:
            return _expire(output, job, today, keep, header, source, manifest, connections, dry_run)


def _expire(output: str, job: str, today: str, keep: dict, header: str, source: str, manifest, connections: dict, dry_run: bool) -> str:
    """With the lock held and the warehouses open: plan, journal, warehouses, record."""
    staging = jobs.Staging(output, f"expire-{job}", dry_run)
    try:
        removal, actions = _plan(staging, manifest, keep)
        summary = removal.summary()
        entry = {
            "expiration_id": job,
            "at": jobs.now(),
            "today": today,
            "keep_from": keep,
            "config": source,
            "removed": {
                "warehouse": summary["warehouse"],
                "duplicates": summary["duplicates"],
                "packages": sorted(removal.packages),
                "runs": removal.runs,
            },
            "manifest_run_id": (manifest or {}).get("run_id"),
            "warehouses": [{"url": redact(u), "status": "pending"} for u in connections],
        }
        if not removal.empty and not dry_run:
            if manifest is not None:
                data = jobs.write_json(updated_manifest(manifest, removal, "expired", job))
                actions.append({"op": "write", "dst": jobs.at(output, MANIFEST_NAME), "data": data})
            text = jobs.jsonl_with(output, EXPIRATIONS_NAME, entry, "expiration_id")
            actions.append({"op": "write", "dst": jobs.at(output, EXPIRATIONS_NAME), "data": text})
            staging.apply(actions)
    finally:
        staging.close()
    entry["warehouses"], failures = _expire_warehouses(connections, keep["warehouse"], job, output, dry_run)
    wh_rows = sum(t["rows"] for w in entry["warehouses"] for t in (w.get("tables") or {}).values())
    report, recorded = None, False
    if not dry_run and (not removal.empty or wh_rows):
        if not removal.empty and storage.exists(jobs.report_path(output)):
            report = entry["report"] = jobs.regenerate_report(output)
        line = jobs.jsonl_with(output, EXPIRATIONS_NAME, entry, "expiration_id")
        storage.write_atomic(jobs.at(output, EXPIRATIONS_NAME), line.encode())
        recorded = True
    text = _text(header, removal, entry, report, dry_run, output)
    if failures:
        raise jobs.PartlyDone(failures[0] + (" (the rest was expired and recorded; run expire again)" if recorded else ""), text)
    return text


def _keep_from(retention, today: str) -> dict:
    """The first day each output keeps (None: every day)."""
    day = date_to_day(today)
    cut = Cutoffs.of(retention, day)
    runs = None if retention.runs_days is None else day - retention.runs_days + 1
    return {
        "warehouse": None if cut.warehouse is None else day_to_date(cut.warehouse),
        "duplicates": None if cut.duplicates is None else day_to_date(cut.duplicates),
        "packages": None if cut.packages is None else day_to_date(cut.packages),
        "runs": None if runs is None else day_to_date(runs),
    }


def _plan(staging: jobs.Staging, manifest: dict | None, keep: dict) -> tuple[Removal, list]:
    output = staging.output
    removal, actions = Removal(), []
    days = set((manifest or {}).get("dates") or [])
    for folder, kind in ((WAREHOUSE_DIR, "warehouse"), (DUPLICATES_DIR, "duplicates")):
        first = keep[kind]
        if first is None:
            continue
        by_folder: dict[str, list[str]] = {}
        for rel in jobs.output_files(output, folder):
            match = _FOLDER_DAY.match(rel)
            if match and match["dt"] < first and match["folder"].count("/") == (2 if kind == "warehouse" else 1):
                by_folder.setdefault(match["folder"], []).append(rel)
        for part_folder, rels in sorted(by_folder.items()):
            dt = part_folder.rsplit("dt=", 1)[1]
            parts = [r for r in rels if _PART.match(r.rsplit("/", 1)[1])]
            if kind == "warehouse":
                stream = part_folder.split("/")[1]
                if stream not in STREAMS:
                    continue
                change = removal.partition(stream, dt)
                change.rows = sum(row_count(staging, r) for r in parts)
                if dt in days:
                    for r in parts:
                        removal.rows_by_source.update(column_values(staging, r, ["event_source"])[0])
            else:
                change = removal.audit_day(dt)
                change.rows = sum(row_count(staging, r) for r in parts)
                if dt in days:
                    for r in parts:
                        removal.add_audit_stats(*column_values(staging, r, ["kind", "event_source", "name"]))
            change.gone, change.files_changed, change.files_after = True, len(parts), []
            actions.append({"op": "delete", "dst": jobs.at(output, part_folder)})
    if keep["packages"] is not None:
        for rel in jobs.output_files(output, PACKAGE_DIR):
            package, manifest_file = PACKAGE_FILE.match(rel), PACKAGE_MANIFEST.match(rel)
            match = package or manifest_file
            if match and match["date"] < keep["packages"]:
                actions.append({"op": "delete_file", "dst": jobs.at(output, rel)})
                if package:
                    entry = {"org": package["org"], "date": package["date"], "events_removed": None, "encrypted": bool(package["gpg"])}
                    removal.packages[rel] = {**entry, "action": "deleted", "events": 0, "bytes": 0, "sha256": None}
    if keep["runs"] is not None:
        for rel in jobs.output_files(output, RUNS_DIR):
            match = _RUN.match(rel)
            if match and (_run_day(output, rel, match["run"]) or "9999-12-31") < keep["runs"]:
                actions.append({"op": "delete_file", "dst": jobs.at(output, rel)})
                if not match["metrics"] or not storage.exists(jobs.at(output, f"{RUNS_DIR}/{match['run']}.json")):
                    removal.runs.append(match["run"])
    removal.runs.sort()
    return removal, actions


def _run_day(output: str, rel: str, run: str) -> str | None:
    """The day a run started: its record's `started_at`, else the date its id begins with."""
    record = jobs.at(output, f"{RUNS_DIR}/{run}.json")
    if storage.exists(record):
        try:
            started = json.loads(storage.read_bytes(record)).get("started_at")
            if isinstance(started, str) and valid_date(started[:10]):
                return started[:10]
        except (ValueError, AttributeError):
            pass
    match = _RUN_DAY.match(run)
    if match and valid_date("-".join(match.groups())):
        return "-".join(match.groups())
    return None


def _expire_warehouses(connections: dict, first: str | None, job: str, output: str, dry_run: bool):
    if first is None:
        nothing = "nothing to do (retention.warehouse_days is null)"
        return [{"url": redact(url), "tables": {}, "status": nothing} for url in connections], []
    return jobs.change_warehouses(
        connections, "expire days", lambda wh, stream: expire_days(wh, stream, first, f"expire-{job}", output, dry_run), dry_run
    )


def _text(header: str, removal: Removal, entry: dict, report: str | None, dry_run: bool, output: str) -> str:
    verb = "would remove" if dry_run else "removed"
    lines = [header]
    for (stream, dt), p in sorted(removal.warehouse.items()):
        lines.append(f"  {verb} warehouse/{stream}/dt={dt} ({plural(p.rows, 'row')}, {plural(p.files_changed, 'file')})")
    for dt, p in sorted(removal.duplicates.items()):
        lines.append(f"  {verb} duplicates/dt={dt} ({plural(p.rows, 'row')})")
    for rel in sorted(removal.packages):
        lines.append(f"  {verb} {rel} and its MANIFEST")
    for run in removal.runs:
        lines.append(f"  {verb} the records of run {run}")
    for w in entry.get("warehouses") or []:
        for table, t in w.get("tables", {}).items():
            if t.get("missing"):
                lines.append(f"  warehouse {w['url']}: no table {table}")
            for dt, n in t["days"].items():
                lines.append(f"  {verb} {table} dt={dt} from {w['url']} ({plural(n, 'row')})")
        if not w.get("tables"):
            lines.append(f"  warehouse {w['url']}: {w.get('status')}")
    wh_rows = sum(t["rows"] + len(t["days"]) for w in entry.get("warehouses") or [] for t in (w.get("tables") or {}).values())
    if removal.empty and not wh_rows:
        lines.append("  nothing to expire")
    elif dry_run:
        lines.append("  dry run: nothing was changed")
    else:
        if report:
            lines.append(f"  report: {jobs.report_path(output)} {report}")
        lines.append(f"recorded in {jobs.at(output, EXPIRATIONS_NAME)}")
    return "\n".join(lines)
