"""What trackpipe prints on the terminal: its own messages, Beam's kept quiet, and values from
the data made safe to print. No Beam import at module level: `quiet_beam_logging` must run
before Beam is imported."""

from __future__ import annotations

import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable


def _not_job_messages(record: logging.LogRecord) -> bool:
    """Root-logger filter: drop the job messages a portable runner relays (see below)."""
    return not record.pathname.endswith(os.path.join("portability", "portable_runner.py"))


_WORKER_THREADS = ("run_worker_", "read_grpc_client_inputs", "read_state")


def _quiet_worker_threads(args) -> None:
    """threading.excepthook: a LOOPBACK worker thread's broken gRPC stream is not printed."""
    name = getattr(args.thread, "name", "") or ""
    if name.startswith(_WORKER_THREADS) and type(args.exc_value).__module__.startswith("grpc"):
        return
    threading.__excepthook__(args)


def quiet_beam_logging() -> None:
    """Beam logs import-time warnings (e.g. about optional GCP clients) at WARNING on the root
    logger; keep the console for trackpipe's own messages."""
    debug = bool(os.environ.get("TRACKPIPE_DEBUG"))
    logging.getLogger().setLevel(logging.INFO if debug else logging.ERROR)
    # Beam logs a failing bundle's traceback at ERROR; trackpipe prints one line instead
    # (TRACKPIPE_DEBUG=1 shows everything).
    logging.getLogger("apache_beam").setLevel(logging.INFO if debug else logging.CRITICAL)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("trackpipe: %(message)s"))
    ours = logging.getLogger("trackpipe")
    if not ours.handlers:
        ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    ours.propagate = False
    # Beam's job-server wrappers (PrismJobServer, FlinkJarJobServer) log the server's output on
    # a logger named after the class, which Prism's wrapper forces to INFO when it starts.
    for name in ("PrismJobServer", "FlinkJarJobServer"):
        server_log = logging.getLogger(name)
        server_log.propagate = debug
        if not debug and not server_log.handlers:
            server_log.addHandler(logging.NullHandler())
    if not debug:
        # Portable runners (Flink, Prism) relay the job's error messages (worker tracebacks)
        # through logging.log on the root logger; trackpipe prints the one-line reason instead.
        logging.getLogger().addFilter(_not_job_messages)
        # LOOPBACK SDK workers run as threads of this process; when a runner's worker goes away
        # (a TaskManager lost mid-job, then retried) their gRPC streams end with a traceback.
        threading.excepthook = _quiet_worker_threads
    # On Dataflow, keep the lines that give the job id and the console link (schedulers such as
    # Airflow's Beam operator read them).
    dataflow = logging.getLogger("apache_beam.runners.dataflow")
    dataflow.setLevel(logging.INFO)
    if not dataflow.handlers:
        dataflow.addHandler(logging.StreamHandler(sys.stderr))


def printable(text: str, limit: int = 40) -> str:
    """A value from the data as it may be printed on a terminal: control characters (escape
    sequences, newlines) shown escaped, cut to `limit` characters."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def run_command(work: Callable[[], str]) -> int:
    """Run a command's work and print what it returns; exit status 0. Any failure is one line on
    stderr and status 1: trackpipe's own errors as they are (with the text the command had to
    show, if the error carries one), a disk error naming the file, anything else as an unexpected
    error. TRACKPIPE_DEBUG=1 adds the traceback."""
    from trackpipe.errors import TrackpipeError, first_line

    debug = bool(os.environ.get("TRACKPIPE_DEBUG"))
    try:
        text = work()
    except TrackpipeError as exc:
        if debug:
            traceback.print_exc()
        if getattr(exc, "text", None):
            print(exc.text)
        print(f"trackpipe: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the output's disk: full, read-only, no permission
        from trackpipe.storage import disk_error_message

        if debug:
            traceback.print_exc()
        print(f"trackpipe: error: {disk_error_message(exc, exc.filename or 'the output')}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - a bug: still one line
        if debug:
            traceback.print_exc()
        print(
            f"trackpipe: error: unexpected {exc.__class__.__name__}: {first_line(exc)} (TRACKPIPE_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1
    print(text)
    return 0
