"""Fault injection for tests: slow a run down at a named point so a test can kill it there.

`TRACKPIPE_TEST_PAUSE="read=2,publish=0.2"` sleeps 2 s before each input file is read and
0.2 s before each publish action. Unset (always, outside tests) it costs one dict lookup.
Points: read (per input file), before_publish (once), publish (per publish action, also the
journal actions of `trackpipe forget` and `trackpipe expire`), stage (per file forget writes
again into its staging folder), warehouse (before each warehouse transaction of forget and
expire).
"""

from __future__ import annotations

import os
import time


def pause(point: str) -> None:
    spec = os.environ.get("TRACKPIPE_TEST_PAUSE")
    if not spec:
        return
    for item in spec.split(","):
        name, _, seconds = item.partition("=")
        if name.strip() == point:
            time.sleep(float(seconds))
