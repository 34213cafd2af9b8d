"""Warehouse partitions, the duplicates audit and the rejects of an output, file by file: which
rows of retired learners each file holds, and its new version without them. No Beam here.

A file that holds none is left alone. A file that holds some is written again, without them,
into the staging folder (same name, same format and compression, the other rows in the same
order with the same values), and the journal moves it over the old one; a file left with no row
is deleted, and a partition left with no file loses its folder (as a run leaves a day with no
rows). Duplicates-audit rows go with the warehouse row they fold into (by `event_id`); a
rejected line goes when it mentions a retired learner (trackpipe.privacy.matching.RejectMatcher).
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from collections import Counter

import fastavro
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from trackpipe import storage
from trackpipe.config import STREAMS, Config
from trackpipe.errors import TrackpipeError, first_line
from trackpipe.events.layout import DUPLICATES_DIR, REJECTS_DIR, WAREHOUSE_DIR
from trackpipe.events.schema import OUTPUT_SCHEMA
from trackpipe.privacy.jobs import Staging, at, relative
from trackpipe.privacy.matching import RejectMatcher, RowMatcher
from trackpipe.privacy.removal_counts import Removal
from trackpipe.storage.formats import TableWriter, gzip_bytes
from trackpipe.warehouse.snapshots import BATCH_ROWS, avro_batches, partition_checksum

_DAY = r"dt=(?P<dt>\d{4}-\d{2}-\d{2})"
WAREHOUSE_FILE = re.compile(
    rf"^{WAREHOUSE_DIR}/(?P<stream>{'|'.join(map(re.escape, STREAMS))})/{_DAY}/(?P<name>part-[^/]*\.(?P<fmt>parquet|avro))$"
)
DUPLICATES_FILE = re.compile(rf"^{DUPLICATES_DIR}/{_DAY}/(?P<name>part-[^/]*\.parquet)$")
REJECTS_FILE = re.compile(rf"^{REJECTS_DIR}/(?P<name>part-[^/]*\.jsonl\.gz)$")
SCAN_COLUMNS = ["event_id", "event_source", *RowMatcher.COLUMNS]


def grouped(rels: list[str], pattern: re.Pattern, key) -> dict:
    """Output files matching `pattern`, grouped by `key(match)`: {key: [(rel, match)]}."""
    groups: dict = {}
    for rel in rels:
        match = pattern.match(rel)
        if match:
            groups.setdefault(key(match), []).append((rel, match))
    return groups


def _read(path: str, fmt: str, columns: list[str] | None = None, rel: str = "") -> pa.Table:
    try:
        if fmt == "parquet":
            return pq.read_table(path, columns=columns)
        return pa.Table.from_batches(list(avro_batches(path)), schema=OUTPUT_SCHEMA)
    except (OSError, ValueError, EOFError, KeyError) as exc:  # Arrow and fastavro errors for damaged files
        raise TrackpipeError(f"{rel or path}: not a readable {fmt} file ({first_line(exc)}); nothing was changed") from None


def _parquet_codec(parquet: pq.ParquetFile, default: str) -> str:
    if parquet.metadata.num_row_groups == 0 or parquet.metadata.num_columns == 0:
        return default
    codec = parquet.metadata.row_group(0).column(0).compression.lower()
    return {"uncompressed": "none", "lz4_raw": "lz4"}.get(codec, codec)


def rewrite_without(src: str, dst: str, fmt: str, drop: np.ndarray, config: Config) -> None:
    """Write `src` again to `dst` without the rows where `drop` is True, batch by batch."""
    if fmt == "parquet":
        parquet = pq.ParquetFile(src)
        codec = _parquet_codec(parquet, config.output.parquet_compression)
        writer = TableWriter(dst, parquet.schema_arrow, "parquet", parquet_compression=codec)
        batches = parquet.iter_batches(batch_size=BATCH_ROWS)
    else:
        with open(src, "rb") as handle:
            codec = fastavro.reader(handle).codec
        writer = TableWriter(dst, OUTPUT_SCHEMA, "avro", avro_codec=codec)
        batches = avro_batches(src)
    offset = 0
    for batch in batches:
        keep = ~drop[offset : offset + batch.num_rows]
        offset += batch.num_rows
        if keep.any():
            writer.write(pa.Table.from_batches([batch]).filter(pa.array(keep)))
    writer.close()


class PartitionRewrite:
    """The new state of one partition folder: its files' names, sizes and digests after the
    change (for the manifest and for warehouses' bookkeeping)."""

    def __init__(self):
        self.before: list[tuple[str, str]] = []
        self.after: list[tuple[str, str]] = []
        self.bytes_after = 0

    def checksums(self) -> tuple[str, str, list[str]]:
        """(checksum before, checksum after, file names after), as `trackpipe load` computes them."""
        return partition_checksum(self.before), partition_checksum(self.after), sorted(n for n, _ in self.after)


def forget_in_warehouse(staging: Staging, rels: list[str], matcher: RowMatcher, config: Config, removal: Removal, days: set[str]):
    """Rows of retired learners in the warehouse partitions: stages new files, returns the
    journal actions, the event ids removed and, per changed partition, its PartitionRewrite."""
    actions, removed_ids, rewrites = [], set(), {}
    for (stream, dt), files in sorted(grouped(rels, WAREHOUSE_FILE, lambda m: (m["stream"], m["dt"])).items()):
        state = PartitionRewrite()
        changed = False
        for rel, match in files:
            local = staging.fetch(rel)
            name, fmt = match["name"], match["fmt"]
            table = _read(local, fmt, SCAN_COLUMNS if fmt == "parquet" else None, rel)
            drop = matcher.rows(table)
            digest = storage.local_file_digest(local)[0]
            state.before.append((name, digest))
            if not drop.any():
                state.after.append((name, digest))
                state.bytes_after += os.path.getsize(local)
                staging.release(rel)
                continue
            changed = True
            gone = table.filter(pa.array(drop))
            removed_ids.update(gone.column("event_id").to_pylist())
            change = removal.partition(stream, dt)
            change.rows += int(drop.sum())
            change.files_changed += 1
            if dt in days:
                removal.rows_by_source.update(gone.column("event_source").to_pylist())
            if drop.all():
                actions.append({"op": "delete_file", "dst": at(staging.output, rel)})
                continue
            new = staging.local(rel)
            rewrite_without(local, new, fmt, drop, config)
            state.after.append((name, storage.local_file_digest(new)[0]))
            state.bytes_after += os.path.getsize(new)
            staged = staging.stage(rel)
            if staged is not None:
                actions.append({"op": "move_file", "src": staged, "dst": at(staging.output, rel)})
        if changed:
            change = removal.partition(stream, dt)
            change.files_after = [n for n, _ in state.after]
            change.bytes_after = state.bytes_after
            rewrites[(stream, dt)] = state
            if not state.after:
                actions.append(_delete_folder_if_only(staging.output, f"{WAREHOUSE_DIR}/{stream}/dt={dt}", {rel for rel, _ in files}))
    return [a for a in actions if a], removed_ids, rewrites


def _delete_folder_if_only(output: str, folder: str, files: set[str]) -> dict | None:
    """Remove a partition folder whose every file is being deleted (nothing else is in it)."""
    inside = {relative(output, p) for p in storage.list_files(at(output, folder))}
    return {"op": "delete", "dst": at(output, folder)} if inside <= files else None


def forget_in_duplicates(staging: Staging, rels: list[str], event_ids: set[str], config: Config, removal: Removal, days: set[str]) -> list:
    """Audit rows of removed warehouse rows (the same event_id): stages new files; returns actions."""
    actions = []
    if not event_ids:
        return actions
    wanted = pa.array(sorted(event_ids), pa.string())
    for dt, files in sorted(grouped(rels, DUPLICATES_FILE, lambda m: m["dt"]).items()):
        names_after, size_after, changed = [], 0, False
        for rel, match in files:
            local = staging.fetch(rel)
            table = _read(local, "parquet", ["event_id", "kind", "event_source", "name"], rel)
            drop = pc.fill_null(pc.is_in(table.column("event_id"), value_set=wanted), False).to_numpy(zero_copy_only=False)
            if not drop.any():
                names_after.append(match["name"])
                size_after += os.path.getsize(local)
                staging.release(rel)
                continue
            changed = True
            change = removal.audit_day(dt)
            change.rows += int(drop.sum())
            change.files_changed += 1
            if dt in days:
                gone = table.filter(pa.array(drop))
                removal.add_audit_stats(*(gone.column(c).to_pylist() for c in ("kind", "event_source", "name")))
            if drop.all():
                actions.append({"op": "delete_file", "dst": at(staging.output, rel)})
                continue
            new = staging.local(rel)
            rewrite_without(local, new, "parquet", drop, config)
            names_after.append(match["name"])
            size_after += os.path.getsize(new)
            staged = staging.stage(rel)
            if staged is not None:
                actions.append({"op": "move_file", "src": staged, "dst": at(staging.output, rel)})
        if changed:
            change = removal.audit_day(dt)
            change.files_after, change.bytes_after = names_after, size_after
            if not names_after:
                actions.append(_delete_folder_if_only(staging.output, f"{DUPLICATES_DIR}/dt={dt}", {rel for rel, _ in files}))
    return [a for a in actions if a]


def forget_in_rejects(staging: Staging, rels: list[str], matcher: RejectMatcher, removal: Removal) -> list:
    """Rejected lines that mention a retired learner: stages new files; returns actions. Kept
    lines stay byte for byte (the file is gzipped again, deterministically)."""
    actions, total_after, changed = [], 0, False
    for rel, _match in grouped(rels, REJECTS_FILE, lambda m: "").get("", []):
        local = staging.fetch(rel)
        try:
            with gzip.open(local, "rb") as handle:
                lines = handle.read().splitlines(keepends=True)
        except (OSError, EOFError, zlib.error) as exc:
            raise TrackpipeError(f"{rel}: not a readable gzip file ({first_line(exc)}); nothing was changed") from None
        kept, reasons = [], Counter()
        for line in lines:
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                kept.append(line)
                continue
            if isinstance(record, dict) and matcher.matches(record.get("line"), record.get("detail")):
                reasons[str(record.get("reason"))] += 1
            else:
                kept.append(line)
        if not reasons:
            total_after += os.path.getsize(local)
            continue
        changed = True
        removal.rejects.update(reasons)
        removal.reject_files += 1
        if not kept:
            actions.append({"op": "delete_file", "dst": at(staging.output, rel)})
            continue
        new = staging.local(rel)
        with open(new, "wb") as handle:
            handle.write(gzip_bytes(b"".join(kept)))
        total_after += os.path.getsize(new)
        staged = staging.stage(rel)
        if staged is not None:
            actions.append({"op": "move_file", "src": staged, "dst": at(staging.output, rel)})
    if changed:
        removal.rejects_bytes = total_after
    return actions


def row_count(staging: Staging, rel: str) -> int:
    """Rows in a warehouse or audit file (Parquet: from the footer)."""
    path = at(staging.output, rel)
    if rel.endswith(".parquet"):
        with storage.open_arrow_input(path) as source:
            return pq.ParquetFile(source).metadata.num_rows
    with open(staging.fetch(rel), "rb") as handle:
        return sum(1 for _ in fastavro.reader(handle))


def column_values(staging: Staging, rel: str, columns: list[str]) -> list[list]:
    """Some columns of a warehouse or audit file, as lists."""
    if rel.endswith(".parquet"):
        with storage.open_arrow_input(at(staging.output, rel)) as source:
            table = pq.read_table(source, columns=columns)
    else:
        table = _read(staging.fetch(rel), "avro", rel=rel)
    return [table.column(c).to_pylist() for c in columns]
