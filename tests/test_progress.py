"""Progress on stderr while a run works, and the closing summary."""

from __future__ import annotations

import io
import os

import pytest

from tests.helpers import run_cli
from trackpipe.runtime.progress import ProgressMonitor, ProgressWriter, render, totals


def test_render_shows_files_bytes_lines_rate_and_elapsed():
    text = render(
        {
            "files_total": 8,
            "files_done": 3,
            "bytes_total": 200_000_000,
            "bytes_read": 50_000_000,
            "lines": 300_000,
            "events": 290_000,
            "chunks_staged": 6,
            "chunks_written": 2,
        },
        10.0,
    )
    assert text == ("read 3/8 files, 50.0 MB of 200.0 MB (25%), 300,000 lines, 290,000 events, 30,000 lines/s, written 2/6 chunks, 10 s")
    assert render({}, 1.2) == "starting (1 s)"


def test_writers_of_several_processes_add_up(tmp_path):
    folder = str(tmp_path / "_progress")
    first = ProgressWriter(folder)
    first.add(flush=True, lines=10, files_done=1)
    (tmp_path / "_progress" / "other-host-1.json").write_text('{"lines": 5, "files_total": 2}')
    assert totals(folder) == {"lines": 15, "files_done": 1, "files_total": 2}


def test_monitor_logs_periodic_lines_without_a_terminal(tmp_path):
    folder = tmp_path / "_progress"
    folder.mkdir()
    (folder / "w.json").write_text('{"files_total": 1, "lines": 42}')
    stream = io.StringIO()
    with ProgressMonitor(str(folder), stream=stream, interval=0.05):
        import time

        time.sleep(0.3)
    assert "trackpipe: progress: read 0/1 files, 42 lines" in stream.getvalue()
    assert "\r" not in stream.getvalue()


@pytest.mark.slow
def test_a_run_shows_progress_and_quiet_silences_it(tmp_path, real_logs):
    env = {**os.environ, "TRACKPIPE_PROGRESS_INTERVAL": "0.3", "TRACKPIPE_TEST_PAUSE": "read=0.2"}
    shown = run_cli("run", "--input", str(real_logs / "*"), "--output", str(tmp_path / "a"), env=env)
    lines = [line for line in shown.stderr.splitlines() if line.startswith("trackpipe: progress: read")]
    assert lines and "files" in lines[-1] and "lines/s" in lines[-1]
    assert "duplicates removed" in shown.stdout and "% of browser events" in shown.stdout
    quiet = run_cli("run", "--input", str(real_logs / "*"), "--output", str(tmp_path / "b"), "--quiet", env=env)
    assert quiet.stderr == "" and quiet.stdout == ""
