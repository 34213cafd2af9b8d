"""`trackpipe load`: load a run's warehouse partitions into DuckDB or PostgreSQL, or write Vertica
load scripts. No Beam here. docs/warehouse.md describes the behaviour for users.

A load:
1. opens the warehouse and creates the tables when missing (DDL from trackpipe.warehouse.ddl);
2. takes the output's lock, finishes a half-done publish (`recover`), lists the partitions
   `OUT/warehouse/<stream>/dt=<day>/part-*` and takes a private snapshot of their files in a
   local temp folder (hard links when possible, else copies; downloads for s3:// and gs:// outputs) while
   computing each partition's checksum, then releases the lock: the output is only locked
   while it is read;
3. per (stream, day), in ONE transaction: deletes the day's rows, inserts the partition's rows,
   records the load in the bookkeeping table. A partition whose checksum equals the last
   recorded load of that (stream, day) is skipped; a day whose last load came from this output
   but whose partition is gone (the run found no rows for it) is emptied.
A failure rolls back the day being loaded (earlier days stay loaded) and is reported as one line
naming the file.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import secrets
import shutil
import tempfile
import time

from trackpipe import storage
from trackpipe.config import STREAMS, Config
from trackpipe.errors import ConfigError, TrackpipeError, first_line
from trackpipe.events.layout import MANIFEST_NAME, WAREHOUSE_DIR
from trackpipe.warehouse.connections import Outcome, Warehouse, parse_url, plural, redact
from trackpipe.warehouse.duckdb_warehouse import DuckDBWarehouse
from trackpipe.warehouse.postgres_warehouse import PostgresWarehouse
from trackpipe.warehouse.snapshots import EMPTY_CHECKSUM, Snapshot, check_files, find_partitions, snapshot, valid_date

DEFAULT_DB_NAME = "warehouse.duckdb"


def normalise_output(output: str) -> str:
    """The output as recorded in the bookkeeping table: absolute local path or URL without a
    trailing slash (the same normalisation as `trackpipe run`)."""
    if storage.is_remote(output):
        return output.rstrip("/")
    return os.path.abspath(output)


def open_warehouse(url: str, config: Config, read_only: bool = False) -> Warehouse:
    kind, target = parse_url(url)
    if kind == "duckdb":
        return DuckDBWarehouse(url, config, target, read_only=read_only)
    return PostgresWarehouse(url, config)


def default_url(output: str) -> str:
    if storage.is_remote(output):
        scheme = output.split("://")[0]
        raise ConfigError(f"--warehouse is required for an {scheme}:// output (the default DuckDB file lives in a local output folder)")
    return f"duckdb:///{os.path.join(os.path.abspath(output), DEFAULT_DB_NAME).lstrip('/')}"


def new_load_id() -> str:
    return f"load-{_dt.datetime.now(_dt.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@contextlib.contextmanager
def output_errors(output: str):
    """Storage errors (an unreachable bucket, missing S3 settings, ...) as one TrackpipeError."""
    try:
        yield
    except TrackpipeError:
        raise
    except Exception as exc:  # noqa: BLE001 - Beam's file systems wrap backend errors in many types
        raise TrackpipeError(f"cannot read the output {output}: {first_line(exc)}") from None


def check_output(output: str) -> None:
    with output_errors(output):
        found = storage.exists(storage.join(output, MANIFEST_NAME)) or storage.exists(storage.join(output, WAREHOUSE_DIR))
    if not found:
        raise TrackpipeError(f"{output} is not a trackpipe output (no {MANIFEST_NAME}, no {WAREHOUSE_DIR}/ folder)")


@contextlib.contextmanager
def read_output(output: str, load_id: str):
    """Hold the output's lock while reading it: finish a half-done publish first."""
    from trackpipe.storage.journal import recover
    from trackpipe.storage.lock import OutputLock

    check_output(output)
    try:
        lock = OutputLock(output, load_id)
        lock.acquire()
    except NotImplementedError as exc:  # e.g. locks on object stores not available yet
        raise TrackpipeError(f"cannot lock {output}: {exc}") from None
    try:
        with output_errors(output):
            recover(output)
            yield
    finally:
        lock.release()


def selected_streams(streams: list[str] | None) -> list[str]:
    chosen = list(streams) if streams else list(STREAMS)
    for stream in chosen:
        if stream not in STREAMS:
            raise ConfigError(f"unknown stream {stream!r} (choose from {', '.join(STREAMS)})")
    return [s for s in STREAMS if s in chosen]


def valid_dates(dates: list[str] | None) -> set[str] | None:
    if dates is None:
        return None
    bad = [d for d in dates if not valid_date(d)]
    if bad:
        raise ConfigError(f"dates must be YYYY-MM-DD, got {bad[0]!r}")
    return set(dates)


def load_output(
    output: str,
    url: str | None,
    dates: list[str] | None = None,
    config: Config | None = None,
    streams: list[str] | None = None,
) -> str:
    """Load the output's partitions (these days, or every day found) into the warehouse at `url`
    (None: OUT/warehouse.duckdb). Returns the report text; raises TrackpipeError on failure."""
    started = time.monotonic()
    config = config or Config()
    output = normalise_output(output)
    url = url or default_url(output)
    chosen = selected_streams(streams)
    wanted = valid_dates(dates)
    load_id = new_load_id()
    check_output(output)  # before the default DuckDB file could be created in a wrong folder
    warehouse = open_warehouse(url, config)
    outcomes: list[Outcome] = []
    tmp = tempfile.mkdtemp(prefix="trackpipe-load-")
    try:
        try:
            warehouse.ensure_tables()
            last = {stream: warehouse.last_loads(stream) for stream in chosen}
        except Exception as exc:  # noqa: BLE001 - any database error: one line
            if isinstance(exc, TrackpipeError):
                raise
            raise TrackpipeError(f"cannot prepare the tables in {redact(url)}: {first_line(exc)}") from None
        with read_output(output, load_id):
            partitions = find_partitions(output, chosen, wanted)
            snaps = [snapshot(p, os.path.join(tmp, p.stream, f"dt={p.dt}")) for p in partitions]
        # The lock is released: everything below works on the private snapshot.
        plan: list[tuple[str, str, Snapshot | None]] = []
        present = {(p.stream, p.dt) for p in partitions}
        for snap in snaps:
            part = snap.partition
            previous = last[part.stream].get(part.dt)
            if previous and previous.checksum == snap.checksum:
                outcomes.append(Outcome(part.stream, part.dt, "skipped"))
            else:
                check_files(snap)
                plan.append((part.stream, part.dt, snap))
        for stream in chosen:
            for day, previous in last[stream].items():
                if (stream, day) in present or (wanted is not None and day not in wanted):
                    continue
                if previous.output == output and previous.checksum != EMPTY_CHECKSUM:
                    plan.append((stream, day, None))
        plan.sort(key=lambda item: (STREAMS.index(item[0]), item[1]))
        for stream, day, snap in plan:
            try:
                if snap is None:
                    outcomes.append(warehouse.empty_day(stream, day, load_id, output))
                else:
                    outcomes.append(warehouse.replace_day(snap, load_id, output))
            except TrackpipeError as exc:
                done = sum(1 for o in outcomes if o.action != "skipped")
                earlier = f" ({plural(done, 'day')} loaded or emptied before this one stay committed)" if done else ""
                raise TrackpipeError(f"{exc}{earlier}") from None
            except Exception as exc:  # noqa: BLE001 - database errors: one line naming the day
                raise TrackpipeError(
                    f"cannot load {stream} dt={day} into {redact(url)}: {first_line(exc)}; the day was left as it was"
                ) from None
    finally:
        warehouse.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return report(outcomes, url, time.monotonic() - started)


def report(outcomes: list[Outcome], url: str, seconds: float) -> str:
    outcomes = sorted(outcomes, key=lambda o: (STREAMS.index(o.stream), o.dt))
    lines = [o.line() for o in outcomes]
    loaded = [o for o in outcomes if o.action == "loaded"]
    skipped = sum(1 for o in outcomes if o.action == "skipped")
    emptied = sum(1 for o in outcomes if o.action == "emptied")
    if not outcomes:
        lines.append(f"total: nothing to load (no partitions selected) into {redact(url)}")
    else:
        rows = sum(o.rows for o in loaded)
        lines.append(
            f"total: {len(loaded)} loaded ({plural(rows, 'row')}), {skipped} skipped (unchanged), {emptied} emptied "
            f"into {redact(url)} in {seconds:.1f} s"
        )
    return "\n".join(lines)
