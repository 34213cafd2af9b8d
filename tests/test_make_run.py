"""`make run` as a newcomer runs it: the sample job, the DuckDB load, the query and the report."""

from __future__ import annotations

import json
import subprocess

import duckdb
import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow


def test_make_run_script_on_the_samples(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(["bash", "scripts/make-run.sh", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    expected = json.loads((ROOT / "samples" / "expected.json").read_text())
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["rows_written"] == expected["rows"] and manifest["reconciliation"]["balanced"]
    db = out / "warehouse.duckdb"  # inside the output folder, as printed
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT count(*) FROM research_events").fetchone()[0]
    assert rows == sum(expected["rows"]["research"].values())
    assert str(db) in result.stdout and "events | input_lines" in result.stdout
    assert f"Data-quality report: {out}/report.html" in result.stdout and (out / "report.html").exists()
