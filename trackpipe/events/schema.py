"""The columns trackpipe writes, as an Arrow schema (Parquet) and an Avro schema. No Beam here.

One list of columns serves both formats, the warehouse DDL and the README, so they cannot drift.
"""

from __future__ import annotations

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")

# The two streams of the warehouse: research events and internal BI events (names starting with
# one of the config's `internal_prefixes`, edx.bi.* by default).
STREAM_RESEARCH = "research"
STREAM_INTERNAL_BI = "internal_bi"
STREAMS = (STREAM_RESEARCH, STREAM_INTERNAL_BI)

# (name, arrow type, description) in output order.
COLUMNS = [
    ("event_id", pa.string(), "Stable id of the row: 128-bit fingerprint of the event's parsed content (hex). Same on every rerun."),
    ("name", pa.string(), "The event's name: `name` when present, else `event_type`."),
    ("event_type", pa.string(), "`event_type` as logged (for implicit request events: the URL path)."),
    ("event_source", pa.string(), "`server`, `browser`, `mobile`, `task`, ... (missing means `server`)."),
    ("time", TS, "When the event happened (`time`, or `timestamp` when `time` is missing), UTC, microseconds."),
    ("received_at", TS, "When the platform received it: `context.received_at` when present, else `time`. `dt` is its UTC date."),
    ("username", pa.string(), "`username` (surrounding whitespace removed; empty string kept)."),
    ("user_id", pa.int64(), "`context.user_id` when it is an integer, else null."),
    ("course_id", pa.string(), "`context.course_id`, else the course key found in `page` or in the `event_type` URL path."),
    ("org_id", pa.string(), "`context.org_id`, else the org of `course_id`. Null when the event has no org."),
    ("session", pa.string(), "`session` (hashed; empty for mobile)."),
    ("ip", pa.string(), "`ip`."),
    ("agent", pa.string(), "`agent` (HTTP user agent)."),
    ("host", pa.string(), "`host` (HTTP host, not the app server)."),
    ("referer", pa.string(), "`referer`."),
    ("accept_language", pa.string(), "`accept_language`."),
    ("page", pa.string(), "`page` (browser: page URL; server: null or `x_module`)."),
    ("event", pa.string(), "The payload as JSON text; a string payload stays that string, unparsed."),
    ("context", pa.string(), "`context` as JSON text."),
    ("copies", pa.int32(), "How many input lines this row stands for (1 + removed exact copies and re-sends)."),
    ("source_file", pa.string(), "The input file the kept line came from."),
]

OUTPUT_SCHEMA = pa.schema([pa.field(name, typ) for name, typ, _ in COLUMNS])
OUTPUT_COLUMNS = [name for name, _, _ in COLUMNS]

# What the reader stages per chunk: the output columns (without `copies`, decided later) plus what
# later steps need: the line number, the raw JSON text for research packages, the stream, the
# `_export` flag of the payload.
STAGED_SCHEMA = pa.schema(
    [f for f in OUTPUT_SCHEMA if f.name != "copies"]
    + [
        pa.field("line_number", pa.int64()),
        pa.field("raw", pa.binary()),
        pa.field("stream", pa.string()),
        pa.field("export", pa.bool_()),
    ]
)

# The duplicates audit: one row per removed input line.
DUPLICATES_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string()),  # of the kept row this line folds into
        pa.field("kind", pa.string()),  # exact | client_resend
        pa.field("event_source", pa.string()),
        pa.field("name", pa.string()),
        pa.field("time", TS),  # of the removed line
        pa.field("received_at", TS),  # of the removed line
        pa.field("time_gap_seconds", pa.float64()),  # removed line's time minus the kept row's time
        pa.field("source", pa.string()),  # file of the removed line
        pa.field("line_number", pa.int64()),
    ]
)

_AVRO_TYPES = {
    pa.string(): "string",
    pa.int64(): "long",
    pa.int32(): "int",
    pa.float64(): "double",
}


def avro_schema(schema: pa.Schema = OUTPUT_SCHEMA, name: str = "TrackingEvent") -> dict:
    """The declared Avro schema for a set of columns: every column nullable, timestamps as
    `timestamp-micros` (UTC)."""
    fields = []
    for field in schema:
        if field.type == TS:
            avro_type = {"type": "long", "logicalType": "timestamp-micros"}
        else:
            avro_type = _AVRO_TYPES[field.type]
        fields.append({"name": field.name, "type": ["null", avro_type], "default": None})
    return {"type": "record", "name": name, "namespace": "org.trackpipe", "fields": fields}
