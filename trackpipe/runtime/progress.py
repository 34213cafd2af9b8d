"""Live progress of a run on stderr, on every runner.

Workers write small progress records (files and bytes read, lines, events, chunks written) to
the run's staging folder, at most once a second per process; the driver polls them and
renders one line: rewritten in place on a terminal, or logged every `TRACKPIPE_PROGRESS_INTERVAL`
seconds (default 10) where no terminal is attached (CI, cron). Nothing here needs the workers
to share memory with the driver, so it works for worker processes and for remote workers
whose output folder the driver can read. `--quiet` turns it off.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time

from trackpipe import storage

PROGRESS_DIR = "_progress"
FLUSH_SECONDS = 1.0


class ProgressWriter:
    """Worker side: counters of one process, flushed to `<staging>/_progress/<host>-<pid>.json`."""

    _instances: dict[str, ProgressWriter] = {}
    _lock = threading.Lock()

    def __init__(self, folder: str):
        self._path = storage.join(folder, f"{socket.gethostname()}-{os.getpid()}.json")
        self._counts: dict[str, int] = {}
        self._last = 0.0

    @classmethod
    def for_folder(cls, folder: str) -> ProgressWriter:
        with cls._lock:
            writer = cls._instances.get(folder)
            if writer is None:
                writer = cls._instances[folder] = cls(folder)
            return writer

    def add(self, flush: bool = False, **deltas: int) -> None:
        with self._lock:
            for key, value in deltas.items():
                self._counts[key] = self._counts.get(key, 0) + value
            now = time.monotonic()
            if not flush and now - self._last < FLUSH_SECONDS:
                return
            self._last = now
            data = json.dumps(self._counts).encode()
        try:
            storage.write_atomic(self._path, data)
        except Exception:  # noqa: BLE001 - progress is best effort and must never fail a run
            pass


def totals(folder: str) -> dict[str, int]:
    """The sum of every process's counters."""
    summed: dict[str, int] = {}
    try:
        paths = storage.list_files(folder)
    except Exception:  # noqa: BLE001
        return summed
    for path in paths:
        if not path.endswith(".json"):
            continue
        try:
            counts = json.loads(storage.read_bytes(path))
        except (OSError, ValueError):
            continue
        for key, value in counts.items():
            summed[key] = summed.get(key, 0) + int(value)
    return summed


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} TB"


def render(counts: dict[str, int], elapsed: float) -> str:
    """One line: what has been read and written so far."""
    if not counts:
        return f"starting ({elapsed:.0f} s)"
    files_total, bytes_total = counts.get("files_total", 0), counts.get("bytes_total", 0)
    lines = counts.get("lines", 0)
    rate = lines / elapsed if elapsed > 0 else 0.0
    parts = [f"read {counts.get('files_done', 0):,}/{files_total:,} files"]
    if bytes_total:
        parts.append(f"{_size(counts.get('bytes_read', 0))} of {_size(bytes_total)} ({counts.get('bytes_read', 0) / bytes_total:.0%})")
    parts.append(f"{lines:,} lines, {counts.get('events', 0):,} events")
    parts.append(f"{rate:,.0f} lines/s")
    if counts.get("chunks_written"):
        parts.append(f"written {counts['chunks_written']:,}/{counts.get('chunks_staged', 0):,} chunks")
    parts.append(f"{elapsed:.0f} s")
    return ", ".join(parts)


class ProgressMonitor:
    """Driver side: a thread that shows the workers' progress until stopped."""

    def __init__(self, folder: str, stream=None, interval: float | None = None):
        self._folder = folder
        self._stream = stream or sys.stderr
        self._tty = hasattr(self._stream, "isatty") and self._stream.isatty()
        default = 0.5 if self._tty else float(os.environ.get("TRACKPIPE_PROGRESS_INTERVAL", "10"))
        self._interval = interval if interval is not None else default
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="trackpipe-progress", daemon=True)
        self._start = time.monotonic()
        self._shown = False

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)
        if self._tty and self._shown:
            self._stream.write("\r\033[K")  # clear the progress line before the summary
            self._stream.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            text = render(totals(self._folder), time.monotonic() - self._start)
            if self._tty:
                self._stream.write("\r\033[K" + text[: _width() - 1])
            else:
                self._stream.write(f"trackpipe: progress: {text}\n")
            self._stream.flush()
            self._shown = True


def _width() -> int:
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except OSError:
        return 120
