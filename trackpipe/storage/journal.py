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
import threading
import time

from trackpipe import storage
from trackpipe.config import STREAMS
from trackpipe.errors import TrackpipeError
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
from trackpipe.storage.lock import create_exclusive
from trackpipe.storage.workdir import WorkDir

JOURNAL = "_publish.json"


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def publish(workdir: WorkDir, stats: dict, info: RunInfo) -> dict:
    """Check and publish a run; returns its manifest. Raises TrackpipeError when refused.

    Exactly one publisher per run: on a runner that retries failed work (Flink with a restart
    strategy, Dataflow), an earlier attempt of the job may still be alive while a retry reaches
    this step. The journal is created exclusively; the attempt that creates it publishes while
    keeping a heartbeat; any other attempt waits for it (and returns the published manifest), or
    finishes the journal itself once the heartbeat has stopped. A run whose manifest is already
    published is not published again, and a plan is only made from a complete set of staged
    files, so an earlier attempt cleaning up can never make a later one publish less."""
    faults.pause("before_publish")
    journal = workdir.path(JOURNAL)
    while True:
        done = _published(info)
        if done is not None:
            return done
        if storage.exists(journal):
            outcome = _wait_or_take_over(workdir, info, journal)
            if outcome is not None:
                return outcome
            continue
        plan = _plan(workdir, stats, info)
        beat = _Heartbeat(workdir)  # beating before the journal exists: no waiter takes a fresh journal for stale
        with beat:
            if create_exclusive(journal, json.dumps(plan).encode()):
                apply_plan(plan, before_cleanup=beat.stop)
                return plan["manifest"]


def _plan(workdir: WorkDir, stats: dict, info: RunInfo) -> dict:
    dates = sorted(info.dates) if info.dates is not None else sorted(stats.get("dates_seen", {}))
    out = info.output
    actions: list[dict] = []
    partitions = []
    written: dict = {"warehouse": {}, "duplicates": {}, "rejects": 0, "packages": {}}
    for folder in (WAREHOUSE_DIR, DUPLICATES_DIR):
        for stream in STREAMS if folder == WAREHOUSE_DIR else (None,):
            for date in dates:
                parts = [folder, stream, partition_dir(date)] if stream else [folder, partition_dir(date)]
                staged = workdir.path(*parts)
                sizes = storage.file_sizes(staged)
                files = _relative(staged, list(sizes))
                actions.append(_replace_or_delete(staged, storage.join(out, *parts), files))
                rows = stats.get("rows_written", {}).get(stream, {}).get(date, 0) if stream else 0
                if rows and not files:
                    workdir.fail(f"the staged files of {'/'.join(parts)} are missing ({rows:,} rows were written); nothing was published")
                if files:
                    target = written["warehouse"].setdefault(stream, {}) if stream else written["duplicates"]
                    target[date] = sum(sizes.values())
                if stream and files:
                    partitions.append({"stream": stream, "dt": date, "rows": rows, "path": "/".join(parts), "files": files})
    staged_rejects = workdir.path(REJECTS_DIR)
    reject_sizes = storage.file_sizes(staged_rejects)
    written["rejects"] = sum(reject_sizes.values())
    actions.append(_replace_or_delete(staged_rejects, storage.join(out, REJECTS_DIR), _relative(staged_rejects, list(reject_sizes))))
    if info.packages:
        packages = stats.get("packages", {})
        for rel, entry in packages.items():
            if not storage.exists(workdir.path(*rel.split("/"))):
                workdir.fail(f"the staged package {rel} is missing; nothing was published")
            written["packages"][entry["date"]] = written["packages"].get(entry["date"], 0) + entry["bytes"]
        actions.extend(_package_actions(workdir, out, info.site, dates, packages))
    manifest = build(stats, info, _now(), dates, partitions, written)
    _check(workdir, manifest, info)
    data = json.dumps(manifest, indent=2, sort_keys=False).encode() + b"\n"
    actions.append({"op": "write", "dst": storage.join(out, RUNS_DIR, f"{info.run_id}.json"), "data": data.decode()})
    actions.append({"op": "write", "dst": storage.join(out, MANIFEST_NAME), "data": data.decode()})
    return {"run_id": info.run_id, "output": out, "workdir": workdir.root, "actions": actions, "manifest": manifest}


def _published(info: RunInfo) -> dict | None:
    """The run's manifest when the run is already published (by another attempt), else None."""
    try:
        manifest = json.loads(storage.read_bytes(storage.join(info.output, MANIFEST_NAME)))
    except (OSError, ValueError, TrackpipeError):
        return None
    return manifest if manifest.get("run_id") == info.run_id else None


HEARTBEAT = "_publish.alive"
HEARTBEAT_SECONDS = 2.0
STALE_SECONDS = 30.0


class _Heartbeat:
    """While a publisher applies its journal, it rewrites `_publish.alive` every few seconds."""

    def __init__(self, workdir: WorkDir):
        self._path = workdir.path(HEARTBEAT)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="trackpipe-publish-heartbeat", daemon=True)

    def _beat(self) -> None:
        while not self._stop.is_set():
            try:
                storage.write_atomic(self._path, str(time.time()).encode())
            except (OSError, TrackpipeError):
                pass  # the work folder is being removed at the end of the publish
            self._stop.wait(HEARTBEAT_SECONDS)

    def __enter__(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def __exit__(self, *exc):
        self.stop()


def _wait_or_take_over(workdir: WorkDir, info: RunInfo, journal: str) -> dict | None:
    """Another attempt owns the journal: wait while its heartbeat lives; return the published
    manifest, or finish the journal once the owner is gone (None: look again)."""
    while True:
        done = _published(info)
        if done is not None:
            return done
        try:
            beat = float(storage.read_bytes(workdir.path(HEARTBEAT)))
        except (OSError, ValueError, TrackpipeError):
            beat = 0.0
        if time.time() - beat > STALE_SECONDS:
            try:
                plan = json.loads(storage.read_bytes(journal))
            except (OSError, TrackpipeError):
                return None  # finished and removed meanwhile: look again
            except ValueError:
                plan = None
            if plan is None:
                workdir.fail("the publish journal of this run is unreadable; nothing more was published")
            with _Heartbeat(workdir) as beat:
                apply_plan(plan, before_cleanup=beat.stop)
            return plan["manifest"]
        time.sleep(HEARTBEAT_SECONDS)


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


def apply_plan(plan: dict, before_cleanup=None) -> None:
    """Apply a publish journal's actions in order (each is idempotent, so a replay after a
    partial replay is fine), then remove the run's work folder (`before_cleanup` runs first)."""
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
    if before_cleanup is not None:
        before_cleanup()
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
