"""The run's private work folder, `OUT/_tmp/<run_id>/`, and how workers report failures.

Everything a run writes goes here first (staged chunks, partitions, packages); only the publish
step moves finished pieces to their public places. Readers of `warehouse/` never see it: it
sits beside, not inside, the published folders, and names starting with `_` are ignored by
Hive-style readers.

A worker that hits an expected failure (corrupt input, disk full, reject threshold) writes the
one-line reason to `_errors/` before raising, because runners wrap exceptions in their own
tracebacks; the driver prints that line instead of a traceback.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

from trackpipe import storage
from trackpipe.errors import TrackpipeError

TMP_DIR = "_tmp"


@dataclass(frozen=True)
class WorkDir:
    output: str
    run_id: str

    @property
    def root(self) -> str:
        return storage.join(self.output, TMP_DIR, self.run_id)

    def path(self, *parts: str) -> str:
        return storage.join(self.root, *parts)

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
