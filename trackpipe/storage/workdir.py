"""The run's private work folders and how workers report failures.

The staging folder `OUT/_tmp/<run_id>/` holds what will be published (partitions, packages,
rejects), the publish journal and workers' error reports; only the publish step moves
finished pieces to their public places. Intermediate data (staged chunks, package fragments)
goes to a scratch folder: inside the staging folder by default, or on local disk when the
output is in an object store and the workers run on this machine (see --scratch-dir).
Readers of `warehouse/` never see either: they sit beside, not inside, the published
folders, and names starting with `_` are ignored by Hive-style readers.

A worker that hits an expected failure (corrupt input, disk full, reject threshold) writes the
one-line reason to `_errors/` before raising, because runners wrap exceptions in their own
tracebacks; the driver prints that line instead of a traceback.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

from trackpipe import storage
from trackpipe.errors import TrackpipeError
from trackpipe.events.layout import TMP_DIR
from trackpipe.storage import gcs_settings, s3_settings


@dataclass(frozen=True)
class WorkDir:
    output: str
    run_id: str
    # The driver's S3 settings, for worker processes that do not share its environment.
    s3: s3_settings.S3Settings = s3_settings.S3Settings()
    # Folder for intermediate data; None: inside the staging folder.
    scratch: str | None = None
    # The driver's GCS settings (its Google variables, read when the job is made), likewise.
    gcs: gcs_settings.GcsSettings = field(default_factory=gcs_settings.settings)

    def activate(self) -> None:
        """Call in every DoFn's setup(): gives this worker process the run's object-store
        settings."""
        if self.s3 != s3_settings.S3Settings():
            s3_settings.install(self.s3)
        if self.gcs != gcs_settings.GcsSettings():
            gcs_settings.install(self.gcs)

    @property
    def root(self) -> str:
        return storage.join(self.output, TMP_DIR, self.run_id)

    def path(self, *parts: str) -> str:
        """A path in the staging folder: publishable outputs, journal, recorded errors. Every
        part must be a plain name (storage.join_inside): nothing is ever written outside."""
        return storage.join_inside(self.root, *parts)

    @property
    def scratch_root(self) -> str:
        return storage.join(self.scratch, self.run_id) if self.scratch else storage.join(self.root, "scratch")

    def scratch_path(self, *parts: str) -> str:
        """A path for intermediate data that is never published (staged chunks, package
        fragments): the biggest files of a run, so they can live on fast local disk."""
        return storage.join_inside(self.scratch_root, *parts)

    def fail(self, message: str):
        """Record `message` for the driver, then raise it."""
        name = f"{time.time():.6f}-{os.getpid()}.json"
        try:
            storage.write_bytes(self.path("_errors", name), json.dumps({"error": message}).encode())
        except OSError:
            pass  # the output itself may be what is broken; the exception still carries it
        raise TrackpipeError(message)

    def guard(self, path: str, write, *args):
        """Run `write(*args)`; turn disk-full and permission errors into a clear failure."""
        try:
            return write(*args)
        except OSError as exc:
            self.fail(storage.disk_error_message(exc, path))

    def errors(self) -> list[str]:
        """Failure messages recorded by workers, oldest first."""
        folder = self.path("_errors")
        try:
            files = storage.list_files(folder)
        except Exception:  # noqa: BLE001 - reporting must not fail on a broken output
            return []
        messages = []
        for name in sorted(files):
            try:
                messages.append(json.loads(storage.read_bytes(name))["error"])
            except (OSError, ValueError, KeyError):
                continue
        return messages
