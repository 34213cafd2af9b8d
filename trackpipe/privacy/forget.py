"""`trackpipe forget`: retire learners from everything an output has published. No Beam here.

The order of a forget:
1. read the retired-users CSV (`username,user_id`; kept in memory only) and check the named
   warehouses' URLs;
2. take the output's lock and finish whatever a killed command left half-done (`recover`),
   including a report a killed forget had still to write;
3. read every research package (decrypting the encrypted ones with the operator's keyring: a
   package no secret key opens stops the command here, naming it), then every warehouse
   partition, duplicates-audit file and rejects file, and write the new version of each file that
   holds something of a retired learner into the staging folder
   (trackpipe.privacy.output_files, trackpipe.privacy.package_files);
4. write one journal listing every move and delete, the report's removal, the updated
   `_manifest.json` (trackpipe.privacy.removal_counts) and the record
   `_retirements/<id>.json`, and apply it (trackpipe.privacy.jobs): a forget killed from here on
   is finished by the next command;
5. delete the rows from each named warehouse (trackpipe.warehouse.removals), one transaction per
   table with a bookkeeping row per day;
6. write `report.html` again if there was one, and complete the record.
A forget that finds nothing changes nothing and writes no record; `--dry-run` stops after step 3
(and counts the warehouses' rows) and changes nothing.
"""

from __future__ import annotations

import json

from trackpipe import storage
from trackpipe.config import Config
from trackpipe.errors import ConfigError
from trackpipe.events.layout import DUPLICATES_DIR, MANIFEST_NAME, PACKAGE_DIR, REJECTS_DIR, RETIREMENTS_DIR, WAREHOUSE_DIR
from trackpipe.privacy import jobs
from trackpipe.privacy.matching import RejectMatcher, RowMatcher, needles
from trackpipe.privacy.output_files import forget_in_duplicates, forget_in_rejects, forget_in_warehouse
from trackpipe.privacy.package_files import find_packages, forget_in_packages, open_packages
from trackpipe.privacy.removal_counts import Removal, updated_manifest
from trackpipe.privacy.retired_users import RetiredList, read_list
from trackpipe.warehouse.connections import plural, redact
from trackpipe.warehouse.removals import forget_rows

RECORD_VERSION = 1


def record_rel(job: str) -> str:
    return f"{RETIREMENTS_DIR}/{job}.json"


def forget(output: str, users: str, config_path: str | None = None, warehouses: list[str] | None = None, dry_run: bool = False) -> str:
    """Retire the learners of the CSV `users` from the output and the warehouses; returns the
    text to print. Raises TrackpipeError (nothing changed unless the message says otherwise)."""
    output = jobs.normalise_output(output)
    retired = read_list(users)
    if not retired:
        raise ConfigError(f"the retired-users list {users} names nobody")
    urls = jobs.check_warehouse_urls(list(warehouses or []))
    jobs.check_output(output)
    job = jobs.new_id()
    owner = f"forget-{job}"
    with jobs.locked(output, owner, finish_journals=not dry_run):
        notes = [n for n in [jobs.default_duckdb_note(output, urls)] if n]
        if dry_run:
            pending = jobs.pending_journals(output)
            if pending:
                notes.append(f"note: {', '.join(pending)} left a half-done journal; the next command finishes it first")
        else:
            notes += finish_pending_reports(output)
        manifest = jobs.read_manifest(output)
        config, source = jobs.config_for(manifest, config_path)
        with jobs.named_warehouses(urls, config, dry_run) as connections:
            return _forget(output, job, retired, config, source, manifest, connections, dry_run, notes)


def _forget(output: str, job: str, retired: RetiredList, config: Config, source: str, manifest, connections: dict, dry_run: bool, notes):
    """Steps 3 to 7, with the lock held and the warehouses open."""
    staging = jobs.Staging(output, f"forget-{job}", dry_run)
    try:
        removal, actions, rewrites = _scan_output(staging, retired, config, manifest)
        record = _record(job, retired, source, removal, manifest)
        if not removal.empty and not dry_run:
            record["report"] = "pending" if storage.exists(jobs.report_path(output)) else "absent"
            record["warehouses"] = [{"url": redact(u), "status": "pending"} for u in connections]
            if record["report"] == "pending":
                actions.append({"op": "delete_file", "dst": jobs.report_path(output)})
            if manifest is not None:
                data = jobs.write_json(updated_manifest(manifest, removal, "forgotten", job))
                actions.append({"op": "write", "dst": jobs.at(output, MANIFEST_NAME), "data": data})
            actions.append({"op": "write", "dst": jobs.at(output, record_rel(job)), "data": jobs.write_json(record)})
            staging.apply(actions)
    finally:
        staging.close()
    results, failures = _forget_in_warehouses(connections, retired, job, output, rewrites, dry_run)
    record["warehouses"] = results
    changed_warehouses = any(t["rows"] for r in results for t in (r.get("tables") or {}).values())
    if not dry_run and (not removal.empty or changed_warehouses):
        if record.get("report") == "pending":
            record["report"] = jobs.regenerate_report(output)
        record.setdefault("report", "unchanged")
        record["finished_at"] = jobs.now()
        jobs.write_record(output, record_rel(job), record)
    text = _text(output, job, retired, removal, record, dry_run, notes)
    if failures:
        done = " (the rest was forgotten and recorded; run forget again for that warehouse)" if "finished_at" in record else ""
        raise jobs.PartlyDone(f"{failures[0]}{done}", text)
    return text


def _scan_output(staging: jobs.Staging, retired: RetiredList, config: Config, manifest: dict | None):
    output = staging.output
    removal = Removal()
    days = set((manifest or {}).get("dates") or [])
    packages = find_packages(jobs.output_files(output, PACKAGE_DIR))
    open_packages(staging, packages)  # first: a package nobody can decrypt stops everything
    actions = forget_in_packages(staging, packages, retired, config, removal)
    found, removed_ids, rewrites = forget_in_warehouse(
        staging, jobs.output_files(output, WAREHOUSE_DIR), RowMatcher(retired), config, removal, days
    )
    actions = found + forget_in_duplicates(staging, jobs.output_files(output, DUPLICATES_DIR), removed_ids, config, removal, days) + actions
    actions += forget_in_rejects(staging, jobs.output_files(output, REJECTS_DIR), RejectMatcher(retired), removal)
    return removal, actions, rewrites


def _record(job: str, retired: RetiredList, source: str, removal: Removal, manifest: dict | None) -> dict:
    return {
        "record_version": RECORD_VERSION,
        "retirement_id": job,
        "command": "forget",
        "started_at": jobs.now(),
        "users": {"counts": {"usernames": len(retired.usernames), "user_ids": len(retired.user_ids)}, **retired.salted_hashes()},
        "config": source,
        "changed": removal.summary(),
        "totals": {
            "warehouse_rows": removal.row_total(),
            "duplicates_rows": removal.audit_total(),
            "reject_lines": sum(removal.rejects.values()),
            "package_events": sum(p["events_removed"] for p in removal.packages.values()),
            "files": sum(p.files_changed for p in removal.warehouse.values())
            + sum(p.files_changed for p in removal.duplicates.values())
            + removal.reject_files
            + len(removal.packages),
        },
        "manifest_run_id": (manifest or {}).get("run_id"),
    }


def _forget_in_warehouses(connections: dict, retired: RetiredList, job: str, output: str, rewrites: dict, dry_run: bool):
    matcher = RowMatcher(retired)
    names = list(retired.usernames)
    ids = [int(i) for i in retired.user_ids if int(i) < 2**63]
    words = needles(retired)

    def change(wh, stream):
        partitions = {dt: state.checksums() for (s, dt), state in rewrites.items() if s == stream}
        return forget_rows(wh, stream, names, ids, words, matcher.row, f"forget-{job}", output, partitions, dry_run)

    return jobs.change_warehouses(connections, "forget", change, dry_run)


def finish_pending_reports(output: str) -> list[str]:
    """Write the report a killed forget had still to write (its record says `pending`)."""
    notes = []
    for rel in jobs.output_files(output, RETIREMENTS_DIR):
        if not rel.endswith(".json"):
            continue
        try:
            record = json.loads(storage.read_bytes(jobs.at(output, rel)))
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("report") == "pending":
            record["report"] = jobs.regenerate_report(output)
            jobs.write_record(output, rel, record)
            notes.append(f"note: wrote the report an interrupted forget ({record.get('retirement_id')}) left to write: {record['report']}")
    return notes


def _text(output: str, job: str, retired: RetiredList, removal: Removal, record: dict, dry_run: bool, notes: list[str]) -> str:
    who = f"{plural(len(retired.usernames), 'username')} and {plural(len(retired.user_ids), 'user id')}"
    verb = "would remove" if dry_run else "removed"
    lines = [f"trackpipe forget{' --dry-run' if dry_run else ''} {job}: {who} ({record['config']})"]
    for (stream, dt), p in sorted(removal.warehouse.items()):
        lines.append(f"  warehouse {stream} dt={dt}: {verb} {plural(p.rows, 'row')} in {plural(p.files_changed, 'file')}")
    for dt, p in sorted(removal.duplicates.items()):
        lines.append(f"  duplicates dt={dt}: {verb} {plural(p.rows, 'row')} in {plural(p.files_changed, 'file')}")
    if removal.rejects:
        lines.append(f"  rejects: {verb} {plural(sum(removal.rejects.values()), 'line')} in {plural(removal.reject_files, 'file')}")
    for rel, p in sorted(removal.packages.items()):
        how = (
            "package deleted (no event left)"
            if p["action"] == "deleted"
            else f"{p['events']:,} left" + (", encrypted again" if p["encrypted"] else "")
        )
        lines.append(f"  {rel}: {verb} {plural(p['events_removed'], 'event')} ({how})")
    for entry in record.get("warehouses") or []:
        tables = ", ".join(
            f"{table} {plural(t['rows'], 'row')}" + (" (no such table)" if t.get("missing") else f" ({plural(len(t['days']), 'day')})")
            for table, t in entry["tables"].items()
        )
        lines.append(f"  warehouse {entry['url']}: {tables or entry.get('status')}")
    if removal.empty and not any(t["rows"] for e in record.get("warehouses") or [] for t in e["tables"].values()):
        lines.append(
            f"  nothing to forget: no event of these learners is left in {output}"
            + (" or the named warehouses" if record.get("warehouses") else "")
        )
    elif dry_run:
        lines.append("  dry run: nothing was changed")
    else:
        if record.get("report") not in (None, "absent", "unchanged"):
            lines.append(f"  report: {jobs.report_path(output)} {record['report']}")
        lines.append(f"record: {jobs.at(output, record_rel(job))}")
    return "\n".join(notes + lines)
