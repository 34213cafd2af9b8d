"""Entry point of the worker processes of `--direct_running_mode multi_processing`.

Beam's own worker (`python -m apache_beam.runners.worker.sdk_worker_main`) logs start-up
chatter and import-time warnings to its stderr, which is the user's terminal, over
trackpipe's progress and summary. This runs the very same worker with a silent root logger;
its log records still reach the runner through Beam's logging channel, so failures are
reported as usual. TRACKPIPE_DEBUG=1 keeps everything.
"""

from __future__ import annotations

import logging
import os
import sys


def main() -> None:
    if not os.environ.get("TRACKPIPE_DEBUG"):
        root = logging.getLogger()
        root.addHandler(logging.NullHandler())  # makes later logging.basicConfig() calls no-ops
        root.setLevel(logging.ERROR)
    from apache_beam.runners.worker import sdk_worker_main

    sdk_worker_main.main(sys.argv)


if __name__ == "__main__":
    main()
