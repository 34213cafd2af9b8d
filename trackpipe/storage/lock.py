"""One run at a time per output: `OUT/_lock.json`, holding the owner and start time.

Taken before anything is written, released at the end (also on failure). A lock whose owner is
a dead process on this same host is stale and taken over with a warning; otherwise a second run
refuses, naming the owner, so two runs never interleave partitions. The lock file is created
atomically: on local disk with O_EXCL, on S3 with a conditional PUT (If-None-Match: *), on Cloud
Storage with an upload conditional on ifGenerationMatch=0. Those two are the stores' own SDK
calls (boto3, google-cloud-storage), here and nowhere else: pyarrow.fs, which does the rest of
the object-store I/O (trackpipe.storage.object_stores), has no conditional create. The publish
journal is created the same way (`create_exclusive`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import socket
import sys

from trackpipe import storage
from trackpipe.errors import LockedError, TrackpipeError
from trackpipe.events.layout import LOCK_NAME
from trackpipe.storage import gcs_settings, object_stores
from trackpipe.storage.s3_settings import redact

log = logging.getLogger("trackpipe")


def pid_alive(pid: int) -> bool:
    """True if `pid` runs on this host; a zombie (killed, not yet reaped) counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        # /proc/<pid>/stat is "pid (comm) state ...": comm may contain spaces.
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rpartition(")")[2].split()[0]
        return state != "Z"
    return True


class OutputLock:
    def __init__(self, output: str, run_id: str):
        self.output = output
        self.path = storage.join(output, LOCK_NAME)
        self.owner = {
            "run_id": run_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "command": " ".join(redact(sys.argv))[:500],
        }
        self._held = False

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()

    def acquire(self) -> None:
        data = json.dumps(self.owner, indent=2).encode()
        for attempt in (1, 2):
            if _create_exclusive(self.path, data):
                self._held = True
                return
            current = self.read()
            if attempt == 1 and self._stale(current):
                log.warning("taking over the stale lock of dead run %s (pid %s)", current.get("run_id"), current.get("pid"))
                storage.delete_file(self.path)
                continue
            raise LockedError(
                f"output {self.output} is in use by run {current.get('run_id', '?')} "
                f"(host {current.get('host', '?')}, pid {current.get('pid', '?')}, started {current.get('started_at', '?')}); "
                f"wait for it, or if that run is dead, delete {self.path}"
            )

    def _stale(self, current: dict) -> bool:
        return current.get("host") == self.owner["host"] and isinstance(current.get("pid"), int) and not pid_alive(current["pid"])

    def read(self) -> dict:
        try:
            return json.loads(storage.read_bytes(self.path))
        except (OSError, ValueError):
            return {}

    def release(self) -> None:
        if self._held and self.read().get("run_id") == self.owner["run_id"]:
            storage.delete_file(self.path)
        self._held = False


def _create_exclusive(path: str, data: bytes) -> bool:
    if path.startswith("s3://"):
        return _s3_create_if_absent(path, data)
    if path.startswith("gs://"):
        return _gcs_create_if_absent(path, data)
    if storage.is_remote(path):
        return _check_then_write(path, data)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return True


def _s3_create_if_absent(path: str, data: bytes) -> bool:
    """S3: a PUT with If-None-Match: * succeeds only if no object has the key (atomic)."""
    from botocore.exceptions import ClientError

    _scheme, bucket, key = object_stores.split(path)
    try:
        object_stores.sdk_client("s3").put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
            return False
        raise TrackpipeError(object_stores.explain(exc, path)) from None
    except Exception as exc:  # noqa: BLE001 - every other failure is one line naming the URL
        raise TrackpipeError(object_stores.explain(exc, path)) from None
    return True


def _gcs_create_if_absent(path: str, data: bytes) -> bool:
    """Cloud Storage: an upload with ifGenerationMatch=0 succeeds only if the object does not
    exist (atomic). google-cloud-storage sends small data as one multipart upload, which is
    also where fake-gcs-server honours the precondition."""
    from google.api_core.exceptions import PreconditionFailed

    _scheme, bucket, key = object_stores.split(path)
    blob = object_stores.sdk_client("gs").bucket(bucket).blob(key)
    try:
        blob.upload_from_string(data, if_generation_match=0, retry=gcs_settings.retry(), timeout=gcs_settings.TIMEOUT)
    except PreconditionFailed:
        return False
    except Exception as exc:  # noqa: BLE001 - every other failure is one line naming the URL
        raise TrackpipeError(object_stores.explain(exc, path)) from None
    return True


def _check_then_write(path: str, data: bytes) -> bool:
    """Other object stores: not atomic (two runs starting in the same instant could both
    win); documented as such."""
    log.warning("the object store of %s has no conditional create here: the lock is best effort", path)
    if storage.exists(path):
        return False
    storage.write_bytes(path, data)
    return True


def create_exclusive(path: str, data: bytes) -> bool:
    """Create a small file only if none exists, atomically (local O_EXCL, or the object store's
    conditional create). False when it exists."""
    return _create_exclusive(path, data)
