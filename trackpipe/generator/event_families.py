"""The event families: what kinds of events the corpus holds, from which source, how often.

A family is one template provider method (event_templates/) and its share of all events;
its name's first letter says its source (server, browser, mobile, task), and the ``*_bi``
families emit the ``edx.bi.*`` events of the internal_bi stream.
"""

from __future__ import annotations

import numpy as np

SOURCES = ("server", "browser", "mobile", "task")
S_SERVER, S_BROWSER, S_MOBILE, S_TASK = range(4)
STREAMS = ("research", "internal_bi")

# ---------------------------------------------------------------------------------------------
# Families. Weights are percent of all events (server ~55, browser ~35, mobile ~7, task ~3,
# of which edx.bi.* ~2).
# ---------------------------------------------------------------------------------------------
FAMILIES = (
    # name, source, weight
    ("s_implicit", S_SERVER, 32.0),
    ("s_implicit_noorg", S_SERVER, 5.0),
    ("s_problem_check", S_SERVER, 4.5),
    ("s_grades", S_SERVER, 6.0),
    ("s_enrollment", S_SERVER, 2.0),
    ("s_forum", S_SERVER, 3.0),
    ("s_misc", S_SERVER, 1.7),
    ("s_bi", S_SERVER, 0.8),
    ("b_video", S_BROWSER, 15.0),
    ("b_problem_check", S_BROWSER, 2.0),
    ("b_problem_graded", S_BROWSER, 0.6),
    ("b_problem_show", S_BROWSER, 0.4),
    ("b_seq", S_BROWSER, 6.0),
    ("b_link", S_BROWSER, 2.0),
    ("b_outline", S_BROWSER, 1.5),
    ("b_page_close", S_BROWSER, 5.2),
    ("b_resume", S_BROWSER, 1.5),
    ("b_bi", S_BROWSER, 0.8),
    ("m_video", S_MOBILE, 6.6),
    ("m_bi", S_MOBILE, 0.4),
    ("t_grades", S_TASK, 3.0),
)
FAM_NAMES = tuple(f[0] for f in FAMILIES)
FAM_SRC = np.array([f[1] for f in FAMILIES])
FAM_W = np.array([f[2] for f in FAMILIES])
FAM = {name: i for i, name in enumerate(FAM_NAMES)}
FAM_STREAM = tuple(1 if name.endswith("_bi") else 0 for name in FAM_NAMES)  # the *_bi families emit edx.bi.*
BIG_FAMILIES = (FAM["s_problem_check"], FAM["s_forum"])
