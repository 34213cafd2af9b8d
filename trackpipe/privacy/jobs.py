"""What `trackpipe forget` and `trackpipe expire` share: the output's lock and recovery, the
config of the output, staged files, and the journal that replaces them. No Beam here.

Both commands change files that were published, so they follow the publish step's discipline
(trackpipe.storage.journal): every new file is first written to the command's staging folder
`OUT/_tmp/<command>-<id>/`; then a journal (`_publish.json` in that folder, the same format a run
writes) lists every move, delete and small write, and is applied action by action (each action
idempotent; a local move is one rename). A command killed while applying leaves the journal
behind, and the next `run`, `load`, `forget` or `expire` finishes it (`recover`) before doing
anything else. Everything happens under the output's lock (`OUT/_lock.json`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import secrets
import shutil
import tempfile

from trackpipe import storage
from trackpipe.config import STREAMS, Config, config_from_dict, load_config
from trackpipe.errors import TrackpipeError, first_line
from trackpipe.events.layout import MANIFEST_NAME, TMP_DIR, WAREHOUSE_DIR
from trackpipe.report.render import REPORT_NAME, write_report
from trackpipe.runtime import faults
from trackpipe.storage.journal import JOURNAL, apply_plan, recover
from trackpipe.storage.lock import OutputLock
from trackpipe.storage.workdir import WorkDir
from trackpipe.warehouse.connections import parse_url, redact

log = logging.getLogger("trackpipe")


class PartlyDone(TrackpipeError):
    """A command that did part of its work (printed as `text`) and then failed (the message)."""

    def __init__(self, message: str, text: str):
        super().__init__(message)
        self.text = text


def new_id() -> str:
    """`20261202T143300Z-84fcd9`: sortable by time, unique."""
    return f"{_dt.datetime.now(_dt.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def normalise_output(output: str) -> str:
    return output.rstrip("/") if storage.is_remote(output) else os.path.abspath(output)


def at(output: str, rel: str) -> str:
    """The path of `rel` ('/'-separated, relative to the output), refusing anything outside it."""
    return storage.join_inside(output, *rel.split("/"))


def relative(output: str, path: str) -> str:
    prefix = output.rstrip("/") + ("/" if storage.is_remote(output) else os.sep)
    if not path.startswith(prefix):
        raise TrackpipeError(f"{path} is not inside {output}")
    return path[len(prefix) :].replace(os.sep, "/")


def output_files(output: str, folder: str) -> list[str]:
    """Every file under OUT/<folder>, relative to the output, sorted ([] when there is none)."""
    root = storage.join(output, folder)
    if not storage.exists(root):
        return []
    return sorted(relative(output, f) for f in storage.list_files(root))


def check_output(output: str) -> None:
    if not (storage.exists(storage.join(output, MANIFEST_NAME)) or storage.exists(storage.join(output, WAREHOUSE_DIR))):
        raise TrackpipeError(f"{output} is not a trackpipe output (no {MANIFEST_NAME}, no {WAREHOUSE_DIR}/ folder)")


def read_manifest(output: str) -> dict | None:
    path = storage.join(output, MANIFEST_NAME)
    if not storage.exists(path):
        return None
    try:
        manifest = json.loads(storage.read_bytes(path))
    except ValueError as exc:
        raise TrackpipeError(f"{path} is not valid JSON ({exc})") from None
    return manifest if isinstance(manifest, dict) else None


def pending_journals(output: str) -> list[str]:
    """Ids of half-applied journals (a killed run, load, forget or expire) in the output."""
    tmp = storage.join(output, TMP_DIR)
    if not storage.exists(tmp):
        return []
    found = []
    for path in storage.list_files(tmp):
        if path.replace(os.sep, "/").endswith("/" + JOURNAL):
            try:
                found.append(str(json.loads(storage.read_bytes(path)).get("run_id")))
            except ValueError:
                continue
    return sorted(found)


@contextlib.contextmanager
def locked(output: str, owner: str, finish_journals: bool = True):
    """Hold the output's lock; first finish what a killed command left half-done (unless
    `finish_journals` is False: a dry run changes nothing). Yields the ids finished."""
    lock = OutputLock(output, owner)
    lock.acquire()
    try:
        completed = recover(output) if finish_journals else []
        if completed:
            log.warning("finished the interrupted publish of %s before starting", ", ".join(completed))
        yield completed
    finally:
        lock.release()


# --- the output's config ------------------------------------------------------------------------


def config_for(output_manifest: dict | None, path: str | None) -> tuple[Config, str]:
    """The config to work with: `--config FILE`, else the one the latest run recorded in its
    manifest (`config`, as that run resolved it, from `options.config`), else the defaults.
    Returns the config and where it came from, for messages."""
    if path:
        return load_config(path), path
    if output_manifest and isinstance(output_manifest.get("config"), dict):
        source = (output_manifest.get("options") or {}).get("config")
        return config_from_dict(output_manifest["config"]), f"the config recorded in {MANIFEST_NAME}" + (f" ({source})" if source else "")
    return Config(), "the default config"


# --- staged files and the journal -----------------------------------------------------------------


class Staging:
    """The command's staging folder `OUT/_tmp/<job>/` and a local scratch folder.

    New files are written locally (`local`), then put in the staging folder (`stage`): for a
    local output the local path already is in the staging folder; for an object store it is
    uploaded. A dry run stages nothing (`stage` returns None)."""

    def __init__(self, output: str, job: str, dry_run: bool):
        self.output = output
        self.job = job
        self.dry_run = dry_run
        self.workdir = WorkDir(output, job)
        self._scratch = tempfile.mkdtemp(prefix="trackpipe-privacy-")

    def scratch(self, name: str) -> str:
        """A local file for intermediate data (downloads, decrypted packages)."""
        return os.path.join(self._scratch, name)

    def local(self, rel: str) -> str:
        """Where to write the new version of output file `rel` (local disk)."""
        if self.dry_run or storage.is_remote(self.output):
            path = os.path.join(self._scratch, "new", *rel.split("/"))
        else:
            path = self.workdir.path(*rel.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def stage(self, rel: str) -> str | None:
        """Put the new version of `rel` (written at `local(rel)`) in the staging folder."""
        faults.pause("stage")
        if self.dry_run:
            return None
        staged = self.workdir.path(*rel.split("/"))
        if storage.is_remote(self.output):
            storage.copy_file(self.local(rel), staged)
        return staged

    def fetch(self, rel: str) -> str:
        """A local path holding output file `rel` as it is now (downloaded from an object store)."""
        path = at(self.output, rel)
        if not storage.is_remote(path):
            return path
        local = os.path.join(self._scratch, "in", *rel.split("/"))
        os.makedirs(os.path.dirname(local), exist_ok=True)
        storage.copy_file(path, local)
        return local

    def release(self, rel: str) -> None:
        """Forget the local copy `fetch` downloaded (output files on local disk stay)."""
        local = os.path.join(self._scratch, "in", *rel.split("/"))
        if storage.is_remote(self.output) and os.path.exists(local):
            os.remove(local)

    def apply(self, actions: list[dict]) -> None:
        """Write the journal, then apply it (trackpipe.storage.journal.apply_plan)."""
        plan = {"run_id": self.job, "output": self.output, "workdir": self.workdir.root, "actions": actions}
        storage.write_atomic(self.workdir.path(JOURNAL), json.dumps(plan).encode())
        apply_plan(plan)
        tmp = storage.join(self.output, TMP_DIR)
        if not storage.is_remote(tmp) and os.path.isdir(tmp) and not os.listdir(tmp):
            os.rmdir(tmp)

    def close(self) -> None:
        """Remove the scratch folder, and the staging folder unless a journal is in it."""
        shutil.rmtree(self._scratch, ignore_errors=True)
        if self.dry_run:
            return
        try:
            if storage.exists(self.workdir.root) and not storage.exists(self.workdir.path(JOURNAL)):
                storage.delete_tree(self.workdir.root)
            tmp = storage.join(self.output, TMP_DIR)
            if not storage.is_remote(tmp) and os.path.isdir(tmp) and not os.listdir(tmp):
                os.rmdir(tmp)
        except OSError as exc:
            log.warning("could not remove the staging folder %s: %s", self.workdir.root, exc)


def report_path(output: str) -> str:
    return storage.join(output, REPORT_NAME)


def write_json(data) -> str:
    return json.dumps(data, indent=2) + "\n"


def regenerate_report(output: str) -> str:
    """Write OUT/report.html again from the output as it is now ('regenerated' or 'failed: ...')."""
    try:
        write_report(output)
    except TrackpipeError as exc:
        return f"failed: {exc}"
    return "regenerated"


def write_record(output: str, rel: str, record: dict) -> None:
    storage.write_atomic(at(output, rel), write_json(record).encode())


def jsonl_with(output: str, rel: str, entry: dict, key: str) -> str:
    """The text of OUT/<rel> (JSON lines) with `entry` added, or put in place of the line with
    the same `key` value."""
    path = at(output, rel)
    lines = storage.read_bytes(path).decode().splitlines() if storage.exists(path) else []
    kept = []
    for line in lines:
        try:
            if json.loads(line).get(key) == entry[key]:
                continue
        except (ValueError, AttributeError):
            pass
        kept.append(line)
    return "".join(f"{line}\n" for line in [*kept, json.dumps(entry, separators=(",", ":"))])


@contextlib.contextmanager
def named_warehouses(urls: list[str], config: Config, dry_run: bool):
    """Connections to the warehouses named with --warehouse, all opened before anything changes
    (an unreachable one stops the command first). A DuckDB file must exist (forget and expire
    never create one); a dry run opens it read-only. Yields {url: Warehouse}."""
    from trackpipe.warehouse.connections import parse_url, redact
    from trackpipe.warehouse.loader import open_warehouse

    opened: dict = {}
    try:
        for url in urls:
            kind, target = parse_url(url)
            if kind == "duckdb" and target != ":memory:" and not os.path.exists(target):
                raise TrackpipeError(f"--warehouse {redact(url)}: no DuckDB database at {target}; nothing was changed")
            try:
                opened[url] = open_warehouse(url, config, read_only=dry_run and kind == "duckdb")
            except TrackpipeError as exc:
                raise TrackpipeError(f"{exc}; nothing was changed") from None
        yield opened
    finally:
        for wh in opened.values():
            with contextlib.suppress(Exception):
                wh.close()


def check_warehouse_urls(urls: list[str]) -> list[str]:
    """The URLs without repeats; a malformed one stops before anything is read."""
    from trackpipe.warehouse.connections import parse_url

    for url in urls:
        parse_url(url)
    return list(dict.fromkeys(urls))


def default_duckdb_note(output: str, urls: list[str]) -> str | None:
    """A note when OUT/warehouse.duckdb (trackpipe load's default) exists but is not named."""
    from trackpipe.warehouse.loader import DEFAULT_DB_NAME

    if storage.is_remote(output):
        return None
    default = os.path.join(output, DEFAULT_DB_NAME)
    named = [parse_url(u)[1] for u in urls if parse_url(u)[0] == "duckdb"]
    # The same file however it was written (duckdb:////abs, a relative path, a symlink).
    if os.path.exists(default) and not any(os.path.exists(p) and os.path.samefile(p, default) for p in named):
        return f"note: {default} (the default database of trackpipe load) was not named with --warehouse and was not changed"
    return None


def change_warehouses(connections: dict, doing: str, change, dry_run: bool) -> tuple[list[dict], list[str]]:
    """`change(warehouse, stream)` on both streams of every named warehouse, one after the other.
    Returns an entry per warehouse (its URL without password, the rows and days changed per
    table, a status) and a one-line failure per warehouse that failed (`cannot <doing> in the
    warehouse URL: reason`); one failing warehouse does not stop the others."""
    results, failures = [], []
    for url, wh in connections.items():
        entry: dict = {"url": redact(url), "tables": {}}
        try:
            for stream in STREAMS:
                outcome = change(wh, stream)
                entry["tables"][outcome.table] = {"rows": outcome.rows, "days": outcome.by_day} | (
                    {"missing": True} if outcome.missing else {}
                )
            entry["status"] = "dry run" if dry_run else "done"
        except Exception as exc:  # noqa: BLE001 - any database error: recorded, reported in one line
            message = str(exc) if isinstance(exc, TrackpipeError) else first_line(exc)
            entry["status"] = f"failed: {message}"
            failures.append(f"cannot {doing} in the warehouse {redact(url)}: {message}")
        results.append(entry)
    return results, failures
