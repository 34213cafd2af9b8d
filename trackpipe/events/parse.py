"""One raw tracking-log line -> a parsed event, a reject with a reason, or a blank. No Beam here.

The rules (README, "Parsing"):
- NUL bytes are removed; a line that is then empty or whitespace is blank.
- The JSON object is taken from the first `{` to the last `}`, which handles every logger prefix
  seen in the wild (Tutor's logging header, rsyslog, docker compose).
- Bytes that are not UTF-8 are decoded with U+FFFD; the event is kept (the raw bytes are kept
  as they were for research packages).
- A line is rejected only when no JSON object parses from it, it has no `event_type`/`name`, or
  it has no parseable time. A payload never causes a reject.

Each event also gets its fingerprints: the *identity* (parsed content without the delivery
fields, see DedupConfig.excluded_fields) and the *exact* fingerprint (identity plus time and
received_at). Both are xxh3-128 of a canonical serialisation (sorted keys, compact), so key
order, whitespace and `\\u` escaping do not matter, and they are the same in every process
(never Python's seeded `hash()`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, NamedTuple

import orjson
import xxhash

from trackpipe.events.orgs import resolve_course_and_org
from trackpipe.events.retirement import RetiredUsers
from trackpipe.events.schema import STREAM_INTERNAL_BI, STREAM_RESEARCH
from trackpipe.events.times import parse_time_us

if TYPE_CHECKING:  # the settings object only; the rules never import the application
    from trackpipe.config import Config

# Reject reason codes (documented in the README).
NOT_JSON = "not_json"
NOT_AN_OBJECT = "not_an_object"
MISSING_EVENT_TYPE = "missing_event_type"
MISSING_TIME = "missing_time"
BAD_TIME = "bad_time"
LINE_TOO_LONG = "line_too_long"
REJECT_REASONS = (NOT_JSON, NOT_AN_OBJECT, MISSING_EVENT_TYPE, MISSING_TIME, BAD_TIME, LINE_TOO_LONG)

_SORT = orjson.OPT_SORT_KEYS
_new_tuple = tuple.__new__
_MASK64 = (1 << 64) - 1
_MISSING = object()


class Retired:
    """What `parse` returns for an event of a retired learner: dropped, only counted."""

    def __repr__(self) -> str:
        return "RETIRED"


RETIRED = Retired()


class Reject(NamedTuple):
    reason: str
    detail: str


class Event(NamedTuple):
    """A parsed event. The first fields are the staged columns (trackpipe.events.schema.STAGED_SCHEMA,
    without event_id, source_file and line_number, which the chunk builder adds); the rest feed
    deduplication."""

    name: str
    event_type: str | None
    event_source: str
    time: int  # µs since epoch, UTC
    received_at: int  # µs since epoch, UTC
    username: str | None
    user_id: int | None
    course_id: str | None
    org_id: str | None
    session: str | None
    ip: str | None
    agent: str | None
    host: str | None
    referer: str | None
    accept_language: str | None
    page: str | None
    event: bytes | None  # UTF-8 JSON text (or the payload string as it came)
    context: bytes | None  # UTF-8 JSON text
    raw: bytes
    stream: str
    export: bool
    # fingerprints (not written as columns)
    identity: int  # 128-bit
    exact: int  # 128-bit; event_id is its hex form
    tiebreak: int  # 64-bit digest of the raw line's bytes
    client: bool  # from a client-side source (browser, mobile): re-sends are duplicates
    session_key: int  # 64-bit digest of the client session (see session_key_of); 0: none

    @property
    def event_id(self) -> str:
        """The row's stable id: the exact fingerprint in hex (chunks compute it in bulk)."""
        return format(self.exact, "032x")


def _text(value) -> str | None:
    """A top-level field as text: strings as they are, null as null, anything else as JSON."""
    if value is None or isinstance(value, str):
        return value
    return _dumps(value).decode("utf-8")


def _dumps(value, sort: bool = False) -> bytes:
    try:
        return orjson.dumps(value, option=_SORT) if sort else orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        # Deeper than orjson's limit, or an integer wider than 64 bits from the fallback parser.
        return json.dumps(value, sort_keys=sort, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _scrub(value):
    """Replace lone surrogates (legal in JSON escapes, not in UTF-8) so every string can be stored."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def _loads(text: bytes):
    """Parse JSON tolerantly; raises ValueError (or RecursionError) when it is not JSON."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    decoded = text.decode("utf-8", "replace")
    try:
        return orjson.loads(decoded)
    except orjson.JSONDecodeError:
        # The stdlib accepts what orjson refuses: NaN, lone surrogate escapes, huge integers.
        return _scrub(json.loads(decoded))


# The tolerant JSON reading and writing the parser uses, for the other rules that re-read lines.
load_json = _loads
dump_json = _dumps


def _short(text: bytes, limit: int = 120) -> str:
    snippet = text[:limit].decode("utf-8", "replace")
    return snippet + ("..." if len(text) > limit else "")


class LineParser:
    """Parses lines according to a Config. Build once per worker; `parse` is the hot path."""

    def __init__(self, config: Config, retired: RetiredUsers | None = None):
        """`retired`: learners whose events are dropped (parse returns RETIRED for them)."""
        self._retired = retired if retired else None
        self._internal = tuple(config.internal_prefixes)
        self._client = frozenset(config.dedup.client_sources)
        self._excluded = tuple(tuple(p.split(".")) for p in config.dedup.excluded_fields)
        self._drop_time = ("time",) in self._excluded
        self._drop_received = ("context", "received_at") in self._excluded
        self._fast_identity = set(self._excluded) <= {("time",), ("context", "received_at")}
        # The session of an event is read from fields the identity covers, so that equal
        # identities always share a session (and a dedup shard). If the config leaves any of them
        # out of the identity, sessions are not used (every event keeps the plain window rule).
        self._sessions = not any(path in _SESSION_FIELDS or path[:2] in _SESSION_FIELDS for path in self._excluded)

    def parse(self, line: bytes) -> Event | Reject | Retired | None:
        """Return the Event, a Reject, RETIRED (an event of a retired learner) or None for a
        blank line."""
        if b"\x00" in line:
            line = line.replace(b"\x00", b"")
        start = line.find(b"{")
        if start < 0:
            stripped = line.strip()
            if not stripped:
                return None
            return self._not_an_object(stripped)
        end = line.rfind(b"}")
        if end < start:
            return Reject(NOT_JSON, f"no closing '}}' after the first '{{': {_short(line[start:])}")
        raw = line[start : end + 1]
        try:
            obj = _loads(raw)
        except (ValueError, RecursionError) as exc:
            return Reject(NOT_JSON, f"{exc.__class__.__name__}: {str(exc)[:200]}")
        if not isinstance(obj, dict):  # cannot happen for text between braces, kept for safety
            return Reject(NOT_AN_OBJECT, f"JSON {type(obj).__name__}, not an object")
        if self._retired is not None and self._retired.matches(obj.get("username"), obj.get("context"), obj.get("event")):
            return RETIRED
        return self._event(obj, raw)

    @staticmethod
    def _not_an_object(stripped: bytes) -> Reject:
        try:
            value = _loads(stripped)
        except (ValueError, RecursionError):
            return Reject(NOT_JSON, f"no JSON object in line: {_short(stripped)}")
        return Reject(NOT_AN_OBJECT, f"JSON {type(value).__name__}, not an object: {_short(stripped)}")

    def _event(self, obj: dict, raw: bytes) -> Event | Reject:
        # The hot path: written for speed (type checks by class, no helper calls on the common
        # shapes), since it runs once per line.
        get = obj.get
        event_type = get("event_type")
        if event_type.__class__ is not str or not event_type:
            event_type = None
        name = get("name")
        if name.__class__ is not str or not name:
            name = event_type
        if name is None:
            return Reject(MISSING_EVENT_TYPE, "no event_type or name")

        time_field = "time"
        time_value = get("time")
        if time_value is None:
            time_field = "timestamp"
            time_value = get("timestamp")
            if time_value is None:
                return Reject(MISSING_TIME, "no time or timestamp field")
        time_us = parse_time_us(time_value)
        if time_us is None:
            return Reject(BAD_TIME, f"{time_field} is not an ISO-8601 time: {str(time_value)[:80]!r}")

        context = get("context")
        if context.__class__ is dict:
            received_value = context.get("received_at", _MISSING)
            course_id = context.get("course_id")
            org = context.get("org_id")
            user_id = context.get("user_id")
            context_bytes = _dumps(context, sort=True)
        else:
            received_value = _MISSING
            course_id = org = user_id = None
            context_bytes = None if context is None else _dumps(context, sort=True)
        if received_value is _MISSING:
            received_us = time_us
            received_marker = b"-"
        else:
            received_us = parse_time_us(received_value)
            received_marker = _dumps(received_value) if received_us is None else b"%d" % received_us
            if received_us is None:
                received_us = time_us

        source = get("event_source")
        if source.__class__ is not str or not source:
            # The in-process shape (event-routing-backends) keeps it in the context.
            source = context.get("event_source") if context.__class__ is dict else None
            if source.__class__ is not str or not source:
                source = "server"
        page = get("page")
        if page is not None and page.__class__ is not str:
            page = _text(page)
        if course_id.__class__ is not str or not course_id or org.__class__ is not str or not org:
            course_id, org = resolve_course_and_org(course_id, org, page, event_type)
        if user_id.__class__ is not int or not -(1 << 63) <= user_id < (1 << 63):
            user_id = None
        username = get("username")
        if username.__class__ is str:
            username = username.strip()
        elif username is not None:
            username = _text(username)
        session, ip, agent, host, referer, language = [
            v if v is None or v.__class__ is str else _text(v)
            for v in (get("session"), get("ip"), get("agent"), get("host"), get("referer"), get("accept_language"))
        ]
        payload = get("event")
        if payload is None or payload.__class__ is str:
            event_bytes = None
            export = payload is None or "_export" not in payload or not _export_false(payload)
        else:
            event_bytes = _dumps(payload, sort=True)
            export = payload.__class__ is not dict or payload.get("_export") is not False

        hasher = self._identity(obj, time_field, context, context_bytes, payload, event_bytes)
        identity = hasher.intdigest()
        hasher.update(b"\x00%d\x00%b" % (time_us, received_marker))
        exact = hasher.intdigest()
        return _new_tuple(
            Event,
            (
                name,
                event_type,
                source,
                time_us,
                received_us,
                username,
                user_id,
                course_id,
                org,
                session,
                ip,
                agent,
                host,
                referer,
                language,
                page,
                _utf8(payload) if event_bytes is None else event_bytes,
                context_bytes,
                raw,
                STREAM_INTERNAL_BI if name.startswith(self._internal) else STREAM_RESEARCH,
                export,
                identity,
                exact,
                xxhash.xxh3_64_intdigest(raw),
                source in self._client,
                session_key_of(username, session, context) if self._sessions else 0,
            ),
        )

    def _identity(self, obj: dict, time_field: str, context, context_bytes, payload, event_bytes):
        """An xxh3-128 hasher fed with the canonical form of the event without its delivery
        fields. Mutates `obj` (fields are popped), so it runs after every other use of `obj`.

        With the default excluded fields, the payload and context are not serialised a second
        time: the hash covers the sorted top-level fields (without time, event and context),
        then the sorted payload and the sorted context (without received_at), each tagged."""
        if not self._fast_identity:
            return xxhash.xxh3_128(self._identity_bytes(obj, time_field))
        if self._drop_time:
            obj.pop(time_field, None)
        has_event = obj.pop("event", _MISSING) is not _MISSING
        has_context = obj.pop("context", _MISSING) is not _MISSING
        hasher = xxhash.xxh3_128(_dumps(obj, sort=True))
        if has_event:
            hasher.update(b"\x00e")
            hasher.update(_dumps(payload) if event_bytes is None else event_bytes)
        if has_context:
            if self._drop_received and context.__class__ is dict and "received_at" in context:
                del context["received_at"]
                context_bytes = _dumps(context, sort=True)
            hasher.update(b"\x00c")
            hasher.update(context_bytes)
        return hasher

    def _identity_bytes(self, obj: dict, time_field: str) -> bytes:
        """Canonical serialisation of the whole event without the configured excluded fields
        (any paths). Mutates `obj`."""
        for path in self._excluded:
            if path == ("time",):
                obj.pop(time_field, None)
                continue
            container = obj
            for key in path[:-1]:
                container = container.get(key) if isinstance(container, dict) else None
            if isinstance(container, dict):
                container.pop(path[-1], None)
        return _dumps(obj, sort=True)


# Field paths the session key is read from (a path, or a prefix of one, left out of the identity
# turns sessions off).
_SESSION_FIELDS = frozenset((("username",), ("session",), ("context",), ("context", "client"), ("context", "client_id")))


def session_key_of(username: str | None, session: str | None, context) -> int:
    """The client session an event belongs to, as a 64-bit digest (0: no usable session).

    Web events (browser, and the server events of the same requests) carry the hashed Django
    session in `session`; mobile events have an empty `session`, and the app is told apart by
    `context.client_id` or, in the Segment shape edX writes, `context.client.device.id`. A
    session is per user: the key covers `username` too."""
    if session.__class__ is str and session:
        key = f"s\x00{username or ''}\x00{session}"
    else:
        client = None
        if context.__class__ is dict:
            client = context.get("client_id")
            if client.__class__ is not str or not client:
                device = context.get("client")
                device = device.get("device") if device.__class__ is dict else None
                client = device.get("id") if device.__class__ is dict else None
        if client.__class__ is not str or not client:
            return 0
        key = f"c\x00{username or ''}\x00{client}"
    return xxhash.xxh3_64_intdigest(key.encode("utf-8", "surrogatepass")) or 1


def _utf8(text: str | None) -> bytes | None:
    """A payload string as UTF-8 bytes (lone surrogates, which the parser scrubs, as U+FFFD)."""
    if text is None:
        return None
    try:
        return text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def _export_false(payload) -> bool:
    """True when the payload (an object, or JSON text of one) holds `"_export": false`."""
    if isinstance(payload, str):
        try:
            payload = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return False
    return isinstance(payload, dict) and payload.get("_export") is False
