"""Deduplication judged by real data written by others (tests/fixtures/real-events, see its
SOURCES.md): whole runs of the CLI, read back line by line.

edX's own acceptance fixtures hold learners who submit the same answers again 1-5 s later, and a
video reloaded after navigating away. Each repeat is identical to the first line except for
`time`, but other events of the same session lie between the two: they are separate actions and
must be kept. Byte-identical copies in the same files are still removed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from tests.helpers import REAL_EVENTS, manifest, run_cli

pytestmark = pytest.mark.slow

ANSWER_DIST = "answer_dist_acceptance_tracking.log"
USER_ACTIVITY = "user_activity_tracking.log"

# (file, line of the repeat, line of the first action, what lies between them in the session)
REPEATED_ACTIONS = [
    (ANSWER_DIST, 167, 161, "problem_graded 164"),
    (ANSWER_DIST, 173, 164, "problem_check 167"),
    (ANSWER_DIST, 182, 175, "problem_graded 177, problem_check 178, problem_graded 181"),
    (ANSWER_DIST, 185, 177, "problem_check 178, problem_graded 181, problem_check 182"),
    (ANSWER_DIST, 295, 286, "problem_graded 289, problem_check 291, problem_graded 293"),
    (ANSWER_DIST, 297, 289, "problem_check 291, problem_graded 293, problem_check 295"),
    (ANSWER_DIST, 310, 303, "problem_graded 305, problem_check 307, problem_graded 309"),
    (ANSWER_DIST, 313, 305, "problem_check 307, problem_graded 309, problem_check 310"),
    (ANSWER_DIST, 315, 310, "problem_graded 313"),
    (ANSWER_DIST, 317, 313, "problem_check 315"),
    (ANSWER_DIST, 338, 334, "problem_graded 336"),
    (ANSWER_DIST, 340, 336, "problem_check 338"),
    (ANSWER_DIST, 341, 338, "problem_graded 340"),
    (ANSWER_DIST, 344, 340, "problem_check 341"),
    (ANSWER_DIST, 345, 341, "problem_graded 344"),
    (ANSWER_DIST, 348, 344, "problem_check 345"),
    (ANSWER_DIST, 350, 345, "problem_graded 348"),
    (ANSWER_DIST, 352, 348, "problem_check 350"),
    (ANSWER_DIST, 357, 354, "problem_graded 356"),
    (ANSWER_DIST, 360, 356, "problem_check 357"),
    (ANSWER_DIST, 362, 357, "problem_graded 360"),
    (ANSWER_DIST, 364, 360, "problem_check 362"),
    (ANSWER_DIST, 365, 362, "problem_graded 364"),
    (ANSWER_DIST, 368, 364, "problem_check 365"),
    (ANSWER_DIST, 442, 435, "problem_graded 438"),
    (ANSWER_DIST, 444, 438, "problem_check 442"),
    (ANSWER_DIST, 448, 442, "problem_graded 444"),
    (ANSWER_DIST, 453, 444, "problem_check 448"),
    (ANSWER_DIST, 482, 462, "play_video 464, pause_video 466, seq_goto 468, seq_goto 475"),
    (USER_ACTIVITY, 87, 83, "problem_graded 85"),
    (USER_ACTIVITY, 89, 85, "problem_check 87"),
]
# Byte-identical copies in the same two files: still removed.
EXACT_COPIES = [(USER_ACTIVITY, line) for line in (1, 2, 3, 4)]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("dedup-real")
    logs = base / "logs"
    logs.mkdir()
    for name in (ANSWER_DIST, USER_ACTIVITY):
        shutil.copy(REAL_EVENTS / "edx-analytics-pipeline" / name, logs / name)
    out = base / "out"
    run_cli("run", "--input", str(logs / "*"), "--output", str(out), "--no-package")
    audit = ds.dataset(out / "duplicates", format="parquet", partitioning="hive").to_table().to_pylist()
    removed = {(os.path.basename(r["source"]), r["line_number"]): r["kind"] for r in audit}
    return out, removed


def _line(name: str, number: int) -> bytes:
    return (REAL_EVENTS / "edx-analytics-pipeline" / name).read_bytes().split(b"\n")[number - 1]


@pytest.mark.parametrize("name, number, first, between", REPEATED_ACTIONS)
def test_a_repeated_action_is_kept(run, name, number, first, between):
    _out, removed = run
    assert (name, number) not in removed, f"{name}:{number} (repeat of line {first}; between them: {between}) was removed"
    assert (name, first) not in removed


@pytest.mark.parametrize("name, number", EXACT_COPIES)
def test_exact_copies_are_still_removed(run, name, number):
    _out, removed = run
    assert removed.get((name, number)) == "exact"


def test_no_client_resend_is_left_in_these_files_and_the_counts_add_up(run):
    out, removed = run
    m = manifest(out)
    assert m["duplicates_removed"]["by_kind"] == {"exact": len(EXACT_COPIES)}
    assert m["reconciliation"]["balanced"]
    assert sorted(removed) == sorted(EXACT_COPIES)


def test_the_repeats_really_are_identical_but_for_time():
    """The fixture facts this test relies on: each repeat equals its first line except `time`."""
    import json

    for name, number, first, _ in REPEATED_ACTIONS:
        a, b = json.loads(_line(name, number)), json.loads(_line(name, first))
        assert a["time"] != b["time"]
        a.pop("time"), b.pop("time")
        assert a == b, (name, number)


def test_the_whole_real_sample_set_loses_only_exact_copies(tmp_path, real_logs):
    out = tmp_path / "out"
    run_cli("run", "--input", str(Path(real_logs) / "*"), "--output", str(out), "--no-package")
    by_kind = manifest(out)["duplicates_removed"]["by_kind"]
    assert set(by_kind) == {"exact"} and by_kind["exact"] > 0
