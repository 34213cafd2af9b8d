"""Helpers for whole-run tests: run the CLI, read outputs back."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

ROOT = Path(__file__).resolve().parent.parent
REAL_EVENTS = Path(__file__).parent / "fixtures" / "real-events"


def run_cli(*args: str, check: bool = True, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `trackpipe ...` in a subprocess, as a user would."""
    result = subprocess.run(
        [sys.executable, "-m", "trackpipe.cli", *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT
    )
    if check and result.returncode != 0:
        raise AssertionError(f"trackpipe {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def manifest(out: Path) -> dict:
    return json.loads((out / "_manifest.json").read_text())


def read_rows(out: Path, stream: str | None = None, fmt: str = "parquet") -> pa.Table:
    """Warehouse rows of one stream (with a `dt` column) or of all (plus `stream`), sorted by event_id."""
    base = out / "warehouse"
    if fmt == "avro":
        return _read_avro(base, stream)
    if stream is not None:
        return ds.dataset(base / stream, format="parquet", partitioning="hive").to_table().sort_by("event_id")
    tables = []
    for name in sorted(p.name for p in base.iterdir()):
        table = read_rows(out, name)
        tables.append(table.append_column("stream", pa.array([name] * table.num_rows, pa.string())))
    return pa.concat_tables(tables).sort_by("event_id")


def _read_avro(base: Path, stream: str | None) -> pa.Table:
    import fastavro

    rows = []
    for path in sorted(base.glob(f"{stream or '*'}/dt=*/*.avro")):
        with open(path, "rb") as handle:
            for rec in fastavro.reader(handle):
                rec["dt"] = path.parent.name[3:]
                if stream is None:
                    rec["stream"] = path.parent.parent.name
                rows.append(rec)
    rows.sort(key=lambda r: r["event_id"])
    return pa.Table.from_pylist(rows)


def read_jsonl_gz(paths) -> list[dict]:
    out = []
    for path in sorted(paths):
        with gzip.open(path, "rt") as handle:
            out.extend(json.loads(line) for line in handle)
    return out


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
