"""Publishing a run: check it, then move its staged outputs to their public places. No Beam.

Until this step everything sits in the run's work folder and the previous outputs are
untouched. Publishing:
1. builds the manifest from the merged statistics and refuses to publish when the counts do
   not reconcile or too many lines were rejected (`max_reject_ratio`);
2. writes a journal (`_tmp/<run>/_publish.json`) listing every move and delete;
3. applies it: each partition of a day the run covers is replaced whole (local disk: one
   directory rename; object stores: copy the new objects, then delete the stale ones); days
   of the run that produced no rows for a stream lose their old partition;
4. writes `_manifest.json` last.

A run killed during step 3 leaves the journal behind; the next run (or `trackpipe load`)
replays it before doing anything else (`recover`), so the outputs end up exactly as this run
would have left them. Every action is idempotent, so a replay after a partial replay is fine.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil

from trackpipe import storage
from trackpipe.config import STREAMS
from trackpipe.events.layout import (
    DUPLICATES_DIR,
    MANIFEST_NAME,
    PACKAGE_DIR,
    REJECTS_DIR,
    RUNS_DIR,
    TMP_DIR,
    WAREHOUSE_DIR,
    package_manifest_name,
    partition_dir,
)
from trackpipe.manifest import RunInfo, build, reject_ratio
from trackpipe.runtime import faults
from trackpipe.storage.workdir import WorkDir

JOURNAL = "_publish.json"


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def publish(workdir: WorkDir, stats: dict, info: RunInfo) -> dict:
    """Check and publish a run; returns its manifest. Raises TrackpipeError when refused."""
    faults.pause("before_publish")
    journal = workdir.path(JOURNAL)
    if storage.exists(journal):  # a retried publish step: finish the recorded plan
        plan = json.loads(storage.read_bytes(journal))
        apply_plan(plan)
        return plan["manifest"]
    dates = sorted(info.dates) if info.dates is not None else sorted(stats.get("dates_seen", {}))
    out = info.output
    actions: list[dict] = []
    partitions = []
    for folder in (WAREHOUSE_DIR, DUPLICATES_DIR):
        for stream in STREAMS if folder == WAREHOUSE_DIR else (None,):
            for date in dates:
                parts = [folder, stream, partition_dir(date)] if stream else [folder, partition_dir(date)]
                staged = workdir.path(*parts)
                files = _relative(staged, storage.list_files(staged))
                actions.append(_replace_or_delete(staged, storage.join(out, *parts), files))
                if stream and files:
                    rows = stats.get("rows_written", {}).get(stream, {}).get(date, 0)
                    partitions.append({"stream": stream, "dt": date, "rows": rows, "path": "/".join(parts), "files": files})
    staged_rejects = workdir.path(REJECTS_DIR)
    actions.append(
        _replace_or_delete(staged_rejects, storage.join(out, REJECTS_DIR), _relative(staged_rejects, storage.list_files(staged_rejects)))
    )
    if info.packages:
        actions.extend(_package_actions(workdir, out, info.site, dates, stats.get("packages", {})))
    manifest = build(stats, info, _now(), dates, partitions)
    _check(workdir, manifest, info)
    data = json.dumps(manifest, indent=2, sort_keys=False).encode() + b"\n"
    actions.append({"op": "write", "dst": storage.join(out, RUNS_DIR, f"{info.run_id}.json"), "data": data.decode()})
    actions.append({"op": "write", "dst": storage.join(out, MANIFEST_NAME), "data": data.decode()})
    plan = {"run_id": info.run_id, "output": out, "workdir": workdir.root, "actions": actions, "manifest": manifest}
    storage.write_atomic(journal, json.dumps(plan).encode())
    apply_plan(plan)
    return manifest


def _check(workdir: WorkDir, manifest: dict, info: RunInfo) -> None:
    rec = manifest["reconciliation"]
    if not rec["balanced"]:
        workdir.fail(f"internal error: the counts do not reconcile ({rec}); nothing was published")
    ratio = reject_ratio(manifest)
    if ratio > info.max_reject_ratio:
        reasons = ", ".join(f"{reason} {n:,}" for reason, n in sorted(manifest["rejected"].items(), key=lambda kv: -kv[1]))
        candidates = manifest["lines_read"] - manifest["blank_lines"]
        workdir.fail(
            f"{manifest['rejected_total']:,} of {candidates:,} non-blank lines rejected ({ratio:.1%}), above "
            f"max_reject_ratio {info.max_reject_ratio:.1%} ({reasons}); nothing was published. "
            "Check --input (is it pointing at tracking logs?) or raise --max-reject-ratio"
        )


def _relative(base: str, files: list[str]) -> list[str]:
    prefix = base.rstrip("/") + ("/" if storage.is_remote(base) else os.sep)
    return sorted(f[len(prefix) :].replace(os.sep, "/") for f in files if f.startswith(prefix))


def _replace_or_delete(staged: str, final: str, files: list[str]) -> dict:
    if files:
        return {"op": "replace", "src": staged, "dst": final, "files": files}
    return {"op": "delete", "dst": final}


def _package_actions(workdir: WorkDir, out: str, site: str, dates: list[str], packages: dict) -> list[dict]:
    """Replace the package files and manifests of the run's days; remove the ones of those days
    that this run did not produce (an org that left the config, an org with no events now)."""
    new = set()
    actions = []
    for rel in sorted(packages):
        folder, _name = rel.rsplit("/", 1)
        date = packages[rel]["date"]
        for name in (_name, package_manifest_name(date)):
            rel_path = f"{folder}/{name}"
            new.add(rel_path)
            parts = rel_path.split("/")
            actions.append({"op": "move_file", "src": workdir.path(*parts), "dst": storage.join_inside(out, *parts)})
    wanted = set(dates)
    pattern = re.compile(
        rf"^{PACKAGE_DIR}/[^/]+/{re.escape(site)}/events/\d{{4}}/"
        rf"(?:.+-{re.escape(site)}-events-(\d{{4}}-\d{{2}}-\d{{2}})\.log\.gz(?:\.gpg)?|MANIFEST-(\d{{4}}-\d{{2}}-\d{{2}})\.json)$"
    )
    root = storage.join(out, PACKAGE_DIR)
    for rel in _relative(out, storage.list_files(root)) if storage.exists(root) else []:
        match = pattern.match(rel)
        if match and (match.group(1) or match.group(2)) in wanted and rel not in new:
            actions.append({"op": "delete_file", "dst": storage.join(out, *rel.split("/"))})
    return actions


def apply_plan(plan: dict) -> None:
    trash = storage.join(plan["workdir"], "_trash")
    output = plan.get("output") or plan["manifest"]["options"]["output"]
    for action in plan["actions"]:  # every move stays inside the output, before anything moves
        storage.check_inside(action["dst"], output)
        if "src" in action:
            storage.check_inside(action["src"], plan["workdir"])
    for index, action in enumerate(plan["actions"]):
        faults.pause("publish")
        op = action["op"]
        if op == "replace":
            _replace(action["src"], action["dst"], action["files"], storage.join(trash, str(index)))
        elif op == "delete":
            storage.delete_tree(action["dst"])
        elif op == "move_file":
            if storage.exists(action["src"]):
                storage.move_file(action["src"], action["dst"])
        elif op == "delete_file":
            storage.delete_file(action["dst"])
        elif op == "write":
            storage.write_atomic(action["dst"], action["data"].encode())
        else:
            raise ValueError(f"unknown publish action {op!r}")
    storage.delete_tree(plan["workdir"])


def _replace(src: str, dst: str, files: list[str], trash: str) -> None:
    if storage.is_remote(src):
        staged = storage.list_files(src)
        if not staged:
            return  # done by an earlier attempt
        for path in staged:
            storage.copy_file(path, storage.join(dst, *path[len(src.rstrip("/")) + 1 :].split("/")))
        keep = {storage.join(dst, *f.split("/")) for f in files}
        storage.delete_files([f for f in storage.list_files(dst) if f not in keep])
        storage.delete_files(staged)
        return
    if not os.path.exists(src):
        return  # done by an earlier attempt
    if os.path.exists(dst):
        if os.path.exists(trash):
            shutil.rmtree(trash)
        os.makedirs(os.path.dirname(trash), exist_ok=True)
        os.rename(dst, trash)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    os.rename(src, dst)


def recover(output: str) -> list[str]:
    """Finish publishes that a killed run left half-done, then remove dead runs' work folders.
    Call with the output's lock held. Returns the run ids whose publish was completed."""
    tmp = storage.join(output, TMP_DIR)
    if not storage.exists(tmp):
        return []
    completed = []
    journals = [f for f in storage.list_files(tmp) if f.endswith("/" + JOURNAL) or f.endswith(os.sep + JOURNAL)]
    for journal in sorted(journals):
        try:
            plan = json.loads(storage.read_bytes(journal))
        except ValueError:
            continue  # a journal that was never completely written: its run never started publishing
        apply_plan(plan)
        completed.append(plan["run_id"])
    storage.delete_tree(tmp)
    return completed
