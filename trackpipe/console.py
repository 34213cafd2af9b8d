"""What trackpipe prints on the terminal: its own messages, Beam's kept quiet, and values from
the data made safe to print. No Beam import at module level: `quiet_beam_logging` must run
before Beam is imported."""

from __future__ import annotations

import logging
import os
import sys


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
