"""The numbers behind `trackpipe report`, gathered from a run's outputs and manifest alone.

No HTML here (trackpipe.report.render renders) and no pipeline: the warehouse partitions, the
duplicates audit and the rejects are read through trackpipe.storage, so a run written to local
disk or to an object store, by any runner, can be reported on. Only the columns a chart needs are
read from the Parquet/Avro files.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import io
import json
import re
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from trackpipe import storage
from trackpipe.errors import TrackpipeError
from trackpipe.events.layout import DUPLICATES_DIR, MANIFEST_NAME, REJECTS_DIR

# The hour of a warehouse row is the hour of `received_at` (UTC): `dt` is its date, so the hours of
# a day partition are exactly that day's 24 hours.
HOUR_COLUMN = "received_at"
SOURCE_COLUMN = "event_source"
NO_SOURCE = "(none)"
TOP_NAMES = 20
EXAMPLES_PER_REASON = 3
EXAMPLE_CHARS = 200
# A change is flagged when it is over 20% (or a value appears from 0) and at least 10 (rows, lines;
# charts of bytes pass their own floor): 3 -> 5 rows is noise, not a broken day.
BIG_CHANGE = 0.20
BIG_MIN_DIFF = 10

_HOUR_US = 3_600_000_000
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


# --- reading -----------------------------------------------------------------------------------


def read_manifest(output: str) -> dict:
    path = storage.join(output, MANIFEST_NAME)
    try:
        if not storage.exists(path):
            raise TrackpipeError(f"no run manifest at {path}: is {output} the output folder of a finished `trackpipe run`?")
        data = storage.read_bytes(path)
    except OSError as exc:
        raise TrackpipeError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise TrackpipeError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or "reconciliation" not in manifest or "run_id" not in manifest:
        raise TrackpipeError(f"{path} is not a trackpipe run manifest (no run_id/reconciliation)")
    return manifest


def _parquet_table(path: str, columns: list[str]):
    import pyarrow.parquet as pq

    if storage.is_remote(path):
        import pyarrow as pa

        return pq.read_table(pa.BufferReader(storage.read_bytes(path)), columns=columns)
    return pq.read_table(path, columns=columns)


def _avro_columns(path: str, columns: list[str]) -> dict[str, list]:
    """The named columns of an Avro container file (only those are decoded)."""
    import fastavro

    stream = io.BytesIO(storage.read_bytes(path))
    writer = fastavro.reader(stream).writer_schema
    fields = []
    for f in writer["fields"]:
        if f["name"] in columns:
            types = f["type"] if isinstance(f["type"], list) else [f["type"]]
            plain = [t["type"] if isinstance(t, dict) and "logicalType" in t else t for t in types]
            fields.append({"name": f["name"], "type": plain, "default": None} if "null" in plain else {"name": f["name"], "type": plain})
    reader_schema = {"type": "record", "name": writer["name"], "fields": fields}
    if writer.get("namespace"):
        reader_schema["namespace"] = writer["namespace"]
    stream.seek(0)
    out: dict[str, list] = {c: [] for c in columns}
    for rec in fastavro.reader(stream, reader_schema=reader_schema):
        for c in columns:
            out[c].append(rec.get(c))
    return out


def hour_counts_of_file(path: str) -> Counter:
    """(hour start as microseconds since the epoch, event source) -> rows, for one warehouse file."""
    counts: Counter = Counter()
    if path.endswith(".avro"):
        cols = _avro_columns(path, [HOUR_COLUMN, SOURCE_COLUMN])
        for value, source in zip(cols[HOUR_COLUMN], cols[SOURCE_COLUMN]):
            if isinstance(value, _dt.datetime):  # fastavro applies the writer's timestamp-micros
                value = (value - _EPOCH) // _dt.timedelta(microseconds=1)
            hour = None if value is None else value // _HOUR_US * _HOUR_US
            counts[(hour, source if source is not None else NO_SOURCE)] += 1
        return counts
    import pyarrow as pa
    import pyarrow.compute as pc

    table = _parquet_table(path, [HOUR_COLUMN, SOURCE_COLUMN])
    if table.num_rows == 0:
        return counts
    micros = table.column(HOUR_COLUMN).cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    hours = pc.multiply(pc.divide(micros, _HOUR_US), _HOUR_US)
    sources = pc.fill_null(table.column(SOURCE_COLUMN), NO_SOURCE)
    grouped = pa.table({"hour": hours, "source": sources}).group_by(["hour", "source"]).aggregate([([], "count_all")])
    for hour, source, n in zip(*(grouped.column(c).to_pylist() for c in ("hour", "source", "count_all"))):
        counts[(hour, source)] += n
    return counts


def hour_label(hour_us: int | None) -> str:
    """'YYYY-MM-DD HH:00' (UTC) for an hour start in microseconds; '(no time)' for None."""
    if hour_us is None:
        return "(no time)"
    return (_EPOCH + _dt.timedelta(microseconds=hour_us)).strftime("%Y-%m-%d %H:00")


# What reading a damaged output file raises (Arrow's errors are OSError/ValueError subclasses;
# zlib.error comes from a damaged gzip member). Such a file becomes a warning in the report.
UNREADABLE = (OSError, ValueError, EOFError, zlib.error)


def _reason(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


def _list(folder: str, suffixes: tuple[str, ...]) -> list[str]:
    try:
        return [f for f in storage.list_files(folder) if f.endswith(suffixes)]
    except FileNotFoundError:
        return []


@dataclass
class Warehouse:
    hourly: dict[str, dict[str, int]]  # 'YYYY-MM-DD HH:00' -> {event_source: rows}, hours sorted
    sources: list[str]  # by rows, most first
    rows_by_partition: dict[tuple[str, str], int]  # (stream, dt) -> rows found in the files
    files: int
    total: int


def gather_warehouse(output: str, manifest: dict, notes: list[str]) -> Warehouse:
    """Rows per hour and event source in the run's partitions (the ones its manifest lists)."""
    by_hour: Counter = Counter()
    by_partition: dict[tuple[str, str], int] = {}
    files_read = 0
    for part in manifest.get("partitions") or []:
        folder = storage.join(output, *part["path"].split("/"))
        files = _list(folder, (".parquet", ".avro"))
        names = sorted(f.replace("\\", "/").rsplit("/", 1)[-1] for f in files)
        expected = sorted(part.get("files") or [])
        missing = sorted(set(expected) - set(names))
        if missing:
            notes.append(f"{part['path']}: {len(missing)} file(s) listed in the manifest are missing ({', '.join(missing[:3])})")
        rows = 0
        for path in files:
            try:
                counts = hour_counts_of_file(path)
            except UNREADABLE as exc:
                notes.append(f"{path}: unreadable ({_reason(exc)})")
                continue
            files_read += 1
            rows += sum(counts.values())
            by_hour.update(counts)
        by_partition[(part["stream"], part["dt"])] = rows
        if rows != part.get("rows", rows):
            notes.append(f"{part['path']}: the files hold {rows:,} rows, the manifest says {part['rows']:,}")
    hourly: dict[str, dict[str, int]] = defaultdict(dict)
    per_source: Counter = Counter()
    for (hour, source), n in by_hour.items():
        label = hour_label(hour)
        hourly[label][source] = hourly[label].get(source, 0) + n
        per_source[source] += n
    sources = [s for s, _ in sorted(per_source.items(), key=lambda kv: (-kv[1], kv[0]))]
    ordered = {h: hourly[h] for h in sorted(hourly)}
    return Warehouse(ordered, sources, by_partition, files_read, sum(per_source.values()))


@dataclass
class Duplicates:
    by_kind: dict[str, int]
    by_name: dict[str, int]  # every name, most first
    by_source_kind: dict[str, dict[str, int]]
    total: int
    files: int


def gather_duplicates(output: str, manifest: dict, notes: list[str]) -> Duplicates:
    """Counts from the duplicates audit of the run's days."""
    import pyarrow as pa

    by_kind: Counter = Counter()
    by_name: Counter = Counter()
    by_source_kind: dict[str, Counter] = defaultdict(Counter)
    files_read = 0
    for date in manifest.get("dates") or []:
        for path in _list(storage.join(output, DUPLICATES_DIR, f"dt={date}"), (".parquet",)):
            try:
                table = _parquet_table(path, ["kind", "event_source", "name"])
            except UNREADABLE as exc:
                notes.append(f"{path}: unreadable ({_reason(exc)})")
                continue
            files_read += 1
            if table.num_rows == 0:
                continue
            table = pa.table({c: table.column(c).fill_null(NO_SOURCE if c == "event_source" else "") for c in table.column_names})
            grouped = table.group_by(["kind", "event_source", "name"]).aggregate([([], "count_all")])
            for kind, source, name, n in zip(*(grouped.column(c).to_pylist() for c in ("kind", "event_source", "name", "count_all"))):
                by_kind[kind] += n
                by_name[name] += n
                by_source_kind[source][kind] += n
    total = sum(by_kind.values())
    stated = (manifest.get("duplicates_removed") or {}).get("total")
    if stated is not None and stated != total:
        notes.append(f"the duplicates audit holds {total:,} rows, the manifest says {stated:,} duplicates were removed")
    return Duplicates(
        by_kind=dict(sorted(by_kind.items(), key=lambda kv: (-kv[1], kv[0]))),
        by_name=dict(sorted(by_name.items(), key=lambda kv: (-kv[1], kv[0]))),
        by_source_kind={
            s: dict(sorted(k.items())) for s, k in sorted(by_source_kind.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
        },
        total=total,
        files=files_read,
    )


@dataclass
class Rejects:
    by_reason: dict[str, int]  # most first
    examples: dict[str, list[dict]]  # reason -> up to 3 {source, line_number, detail, line, cut}
    total: int
    files: int


def gather_rejects(output: str, manifest: dict, notes: list[str]) -> Rejects:
    by_reason: Counter = Counter()
    examples: dict[str, list[dict]] = defaultdict(list)
    files = _list(storage.join(output, REJECTS_DIR), (".jsonl.gz", ".jsonl"))
    for path in files:
        try:
            data = storage.read_bytes(path)
            if path.endswith(".gz"):
                data = gzip.decompress(data)
        except UNREADABLE as exc:
            notes.append(f"{path}: unreadable ({_reason(exc)})")
            continue
        for raw in data.splitlines():
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
            except ValueError:
                notes.append(f"{path}: a line that is not JSON")
                continue
            reason = str(rec.get("reason") or "(no reason)")
            by_reason[reason] += 1
            if len(examples[reason]) < EXAMPLES_PER_REASON:
                line = rec.get("line")
                line = line if isinstance(line, str) else json.dumps(line)
                text, cut = example_text(line)
                examples[reason].append(
                    {
                        "source": str(rec.get("source") or ""),
                        "line_number": rec.get("line_number"),
                        "detail": mask_personal(str(rec.get("detail") or ""))[:EXAMPLE_CHARS],
                        "line": text,
                        "cut": cut or bool(rec.get("line_truncated")),
                    }
                )
    total = sum(by_reason.values())
    stated = manifest.get("rejected_total")
    if stated is not None and stated != total:
        notes.append(f"the rejects files hold {total:,} lines, the manifest says {stated:,} were rejected")
    ordered = dict(sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0])))
    return Rejects(ordered, {r: examples[r] for r in ordered}, total, len(files))


# --- masking personal data in example lines ---------------------------------------------------

# Keys whose scalar values are personal. `name` alone is the event's name and is kept; so are
# `display_name`, `course_id`, `org_id`...
_PERSONAL_KEY = (
    r"(?:[a-z0-9]+_)*(?:username|user_?name|user_?id|userid|user|student|learner|anonymous_?id|"
    r"e_?mail|email_?address|mail|ip|ip_?address|client_?ip|remote_?addr|x_forwarded_for|"
    r"session|session_?id|sessionid|full_?name|first_?name|last_?name|password|phone(?:_?number)?)"
)
# "key": value, at any level of JSON-in-a-string escaping (\"key\": \"value\"); the value is a
# string (possibly cut off at the end of a truncated line) or a number.
_KEY_VALUE = re.compile(
    r"(?P<q>\\*\")(?P<key>" + _PERSONAL_KEY + r")(?P=q)(?P<sep>\s*:\s*)"
    r"(?:(?P=q)(?P<text>.*?)(?<!\\)(?P=q)|(?P=q)(?P<cut>.*)$|(?P<num>-?\d[\d.eE+-]*))",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}|(?:[0-9a-f]{1,4}:){1,7}:(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){0,6})?"
    r"|::[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){0,6})(?![\w:])",
    re.IGNORECASE,
)
MASK = "***"


def _mask_value(m: re.Match) -> str:
    q = m.group("q")
    head = f"{q}{m.group('key')}{q}{m.group('sep')}"
    if m.group("num") is not None:
        return head + MASK
    if m.group("cut") is not None:
        return head + q + MASK
    return head + q + MASK + q


def mask_personal(text: str) -> str:
    """`text` with the values of personal keys (username, ip, email, session, user_id, ...),
    e-mail addresses and IP addresses replaced by ***. Works on JSON, on JSON inside JSON strings,
    and on broken or cut-off JSON."""
    text = _KEY_VALUE.sub(_mask_value, text)
    text = _EMAIL.sub(MASK, text)
    text = _IPV4.sub(MASK, text)
    return _IPV6.sub(MASK, text)


def example_text(line: str, limit: int = EXAMPLE_CHARS) -> tuple[str, bool]:
    """A rejected line for display: masked first, then cut to `limit` characters."""
    masked = mask_personal(line)
    if len(masked) > limit:
        return masked[:limit], True
    return masked, False


def org_example(value: str, limit: int = 60) -> str:
    """An org value left out of the packages as unsafe, for display: personal data masked,
    control characters shown escaped (`\\x00`, `\\n`), cut to `limit` characters."""
    masked = mask_personal(str(value))
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in masked)
    return shown if len(shown) <= limit else shown[: limit - 1] + "\u2026"


# --- from the manifest -------------------------------------------------------------------------

RECONCILIATION_PARTS = [
    ("rows_written", "rows written"),
    ("duplicates_removed", "duplicates removed"),
    ("rejected", "rejected"),
    ("blank_lines", "blank lines"),
    ("outside_selected_dates", "outside selected days"),
    ("retired", "retired learners"),
    ("expired", "expired by retention"),
    ("forgotten", "forgotten (trackpipe forget)"),
]
# Ways out of the reconciliation that only some runs have: shown when either run has them.
OPTIONAL_PARTS = ("retired", "expired", "forgotten")


def rows_by_stream_day(manifest: dict) -> dict[tuple[str, str], int]:
    """(stream, dt) -> rows written, with 0 for a day of the run a stream has no rows for."""
    written = manifest.get("rows_written") or {}
    streams = sorted(set(written) | {p["stream"] for p in manifest.get("partitions") or []})
    dates = sorted(set(manifest.get("dates") or []) | {d for days in written.values() for d in days})
    return {(s, d): int(written.get(s, {}).get(d, 0)) for s in streams for d in dates}


@dataclass
class OrgPackage:
    org: str
    files: list[dict]  # manifest entries, by date
    events: int
    bytes: int


def packages_by_org(manifest: dict) -> list[OrgPackage] | None:
    section = manifest.get("research_package")
    if section is None:
        return None
    orgs: dict[str, list[dict]] = defaultdict(list)
    for entry in section.get("files") or []:
        orgs[str(entry.get("org"))].append(entry)
    result = [
        OrgPackage(
            org,
            sorted(files, key=lambda e: (e.get("date") or "", e.get("path") or "")),
            sum(int(e.get("events") or 0) for e in files),
            sum(int(e.get("bytes") or 0) for e in files),
        )
        for org, files in orgs.items()
    ]
    return sorted(result, key=lambda o: (-o.bytes, o.org))


# --- one run, gathered -------------------------------------------------------------------------


@dataclass
class RunData:
    output: str
    manifest: dict
    warehouse: Warehouse
    duplicates: Duplicates
    rejects: Rejects
    rows: dict[tuple[str, str], int]
    packages: list[OrgPackage] | None
    notes: list[str] = field(default_factory=list)  # where the files disagree with the manifest

    @property
    def dates(self) -> list[str]:
        return sorted(self.manifest.get("dates") or [])


def gather(output: str) -> RunData:
    manifest = read_manifest(output)
    notes: list[str] = []
    rec = manifest["reconciliation"]
    if not rec.get("balanced", True):
        notes.append("the manifest's reconciliation does not balance")
    for err in manifest.get("input_errors") or []:
        notes.append(f"input error: {err.get('file')}: {err.get('error') or err.get('reason') or err}")
    try:
        warehouse = gather_warehouse(output, manifest, notes)
        duplicates = gather_duplicates(output, manifest, notes)
        rejects = gather_rejects(output, manifest, notes)
    except OSError as exc:  # listing a folder failed (permissions, object store unreachable)
        raise TrackpipeError(f"cannot read the outputs in {output}: {_reason(exc)}") from None
    return RunData(output, manifest, warehouse, duplicates, rejects, rows_by_stream_day(manifest), packages_by_org(manifest), notes)


# --- comparing two runs ------------------------------------------------------------------------


def align_dates(dates: list[str], other: list[str]) -> tuple[dict[str, str | None], str]:
    """Which day of the other run each day of this run is compared with, and how: by the same
    date when the runs share a day (a rerun), else by position (today's run vs yesterday's)."""
    dates, other = sorted(dates), sorted(other)
    if set(dates) & set(other):
        return {d: (d if d in other else None) for d in dates}, "date"
    return {d: (other[i] if i < len(other) else None) for i, d in enumerate(dates)}, "position"


def other_hour(hour: str, day_map: dict[str, str | None]) -> str | None:
    """The hour of the other run that an hour label of this run is compared with."""
    other_day = day_map.get(hour[:10])
    return None if other_day is None else other_day + hour[10:]


@dataclass(frozen=True)
class Change:
    value: float
    prev: float | None
    diff: float | None
    pct: float | None  # None when prev is 0 or missing
    big: bool


def change(value: float, prev: float | None, min_diff: float = BIG_MIN_DIFF) -> Change:
    """This run's value against the other run's (None: nothing to compare with)."""
    if prev is None:
        return Change(value, None, None, None, False)
    diff = value - prev
    pct = diff / prev if prev else None
    big = abs(diff) >= min_diff and (pct is None or abs(pct) > BIG_CHANGE)
    return Change(value, prev, diff, pct, big)
