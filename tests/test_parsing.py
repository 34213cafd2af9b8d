"""Tier 1: the parsing rules, as plain functions, on real and synthetic lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trackpipe.config import Config, DedupConfig
from trackpipe.events.orgs import course_key_in_url, org_of_course_id, resolve_course_and_org
from trackpipe.events.parse import (
    BAD_TIME,
    MISSING_EVENT_TYPE,
    MISSING_TIME,
    NOT_AN_OBJECT,
    NOT_JSON,
    Event,
    LineParser,
    Reject,
)
from trackpipe.events.times import parse_time_us, us_to_iso

REAL = Path(__file__).parent / "fixtures" / "real-events"
PARSER = LineParser(Config())


def parse(line: bytes | str):
    return PARSER.parse(line.encode() if isinstance(line, str) else line)


def event_line(**fields) -> str:
    base = {"event_type": "problem_check", "time": "2026-11-02T13:43:34.967980+00:00", "event_source": "server"}
    base.update(fields)
    return json.dumps(base)


# --- time -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, iso",
    [
        ("2016-08-04T13:43:34.967980+00:00", "2016-08-04T13:43:34.967980+00:00"),
        ("2016-08-04T13:43:34+00:00", "2016-08-04T13:43:34+00:00"),
        ("2016-08-04T13:43:34Z", "2016-08-04T13:43:34+00:00"),
        ("2016-08-04T13:43:34.5Z", "2016-08-04T13:43:34.500000+00:00"),
        ("2016-08-04T15:43:34.967980+02:00", "2016-08-04T13:43:34.967980+00:00"),
        ("2016-08-04T08:43:34-05:00", "2016-08-04T13:43:34+00:00"),
        ("2016-08-04T13:43:34.967980", "2016-08-04T13:43:34.967980+00:00"),  # no offset = UTC
        ("2016-08-04 13:43:34", "2016-08-04T13:43:34+00:00"),
        ("2016-08-04T23:30:00-05:00", "2016-08-05T04:30:00+00:00"),  # a negative offset crosses midnight
    ],
)
def test_every_iso_variant_becomes_the_same_utc_instant(text, iso):
    assert us_to_iso(parse_time_us(text)) == iso


@pytest.mark.parametrize("value", ["yesterday", "", "2016-13-45T00:00:00", 1470318214, None, {"t": 1}, "2016-08-04T13:43:34+25:00"])
def test_non_times_are_not_parsed(value):
    assert parse_time_us(value) is None


# --- rejects and blanks -----------------------------------------------------------------------


@pytest.mark.parametrize("line", [b"", b"   ", b"\r", b"\x00\x00\x00", b" \t \x00 \r"])
def test_blank_lines(line):
    assert parse(line) is None


@pytest.mark.parametrize(
    "line, reason",
    [
        ('{"event_type": "x", "time": "2016-08-04T13:43:34+00:00"', NOT_JSON),  # truncated
        ("# a comment line", NOT_JSON),
        ("garbage", NOT_JSON),
        ('{"event_type": "x", "time": }', NOT_JSON),
        ("[1, 2, 3]", NOT_AN_OBJECT),
        ("42", NOT_AN_OBJECT),
        ('"just a string"', NOT_AN_OBJECT),
        ('{"time": "2016-08-04T13:43:34+00:00", "event": {}}', MISSING_EVENT_TYPE),
        ('{"event_type": "", "name": "", "time": "2016-08-04T13:43:34+00:00"}', MISSING_EVENT_TYPE),
        ('{"event_type": 12, "time": "2016-08-04T13:43:34+00:00"}', MISSING_EVENT_TYPE),
        ('{"event_type": "x"}', MISSING_TIME),
        ('{"event_type": "x", "time": null}', MISSING_TIME),
        ('{"event_type": "x", "time": "yesterday"}', BAD_TIME),
        ('{"event_type": "x", "time": 1470318214}', BAD_TIME),
    ],
)
def test_reject_reasons(line, reason):
    result = parse(line)
    assert isinstance(result, Reject)
    assert result.reason == reason
    assert result.detail


def test_a_payload_never_causes_a_reject():
    cut = '{"GET": {"a": ["' + "x" * 600
    for payload in [cut[:512], "a=1&b=2", "", ["x", 1], None, {"nested": {"deep": [1, 2]}}]:
        result = parse(event_line(event=payload, event_source="browser"))
        assert isinstance(result, Event), payload
    assert parse(event_line(event=cut[:512])).event == cut[:512].encode()  # a string payload stays that string


# --- prefixes, NULs, encodings ----------------------------------------------------------------

BARE = event_line(username="alice")


@pytest.mark.parametrize(
    "line",
    [
        BARE,
        "2023-05-23 14:12:17,308 INFO 7 [tracking] [user 6] [ip 172.18.0.1] logger.py:41 - " + BARE,
        "lms-1  | " + BARE,
        "Sep 21 03:55:01 lms-host tracking: " + BARE,
        "\x00\x00\x00\x00" + BARE,
        BARE + "\r",
    ],
)
def test_logger_prefixes_nuls_and_crlf_are_handled(line):
    result = parse(line)
    assert isinstance(result, Event)
    assert result.username == "alice"
    assert result.raw == BARE.encode()  # the JSON object exactly as it stood, prefix removed


def test_invalid_utf8_is_replaced_and_the_event_kept():
    line = event_line(username="bob").replace("bob", "b\udcffob").encode("utf-8", "surrogateescape")
    assert b"\xff" in line
    result = parse(line)
    assert isinstance(result, Event)
    assert result.username == "b\ufffdob"
    assert result.raw == line  # raw bytes are kept for research packages


def test_lone_surrogate_escapes_and_nan_are_tolerated():
    result = parse('{"event_type": "x", "time": "2016-08-04T13:43:34+00:00", "username": "\\ud800", "event": {"v": NaN}}')
    assert isinstance(result, Event)
    assert result.username == "\ufffd"


def test_huge_event_is_kept():
    result = parse(event_line(event={"blob": "y" * 3_000_000}))
    assert isinstance(result, Event)
    assert len(result.event) > 3_000_000


# --- fields -----------------------------------------------------------------------------------


def test_name_is_preferred_over_event_type_and_source_defaults_to_server():
    line = '{"name": "edx.grades.problem.submitted", "event_type": "/courses/x", "time": "2023-05-23T14:12:17+00:00"}'
    result = parse(line)
    assert (result.name, result.event_type, result.event_source) == ("edx.grades.problem.submitted", "/courses/x", "server")
    only_type = parse('{"event_type": "play_video", "time": "2023-05-23T14:12:17+00:00", "event_source": ""}')
    assert (only_type.name, only_type.event_source) == ("play_video", "server")


def test_event_source_falls_back_to_the_context_in_the_in_process_shape():
    in_process = parse('{"name": "play_video", "timestamp": "2023-05-23T14:12:17+00:00", "context": {"event_source": "browser"}}')
    assert in_process.event_source == "browser" and in_process.client
    top_level_wins = parse(
        '{"name": "x", "time": "2023-05-23T14:12:17+00:00", "event_source": "server", "context": {"event_source": "browser"}}'
    )
    assert top_level_wins.event_source == "server"
    odd_context = parse('{"name": "x", "time": "2023-05-23T14:12:17+00:00", "context": {"event_source": 7}}')
    assert odd_context.event_source == "server"


def test_timestamp_stands_in_for_a_missing_time():
    result = parse('{"name": "x", "timestamp": "2023-05-23T14:12:19.620891+00:00"}')
    assert us_to_iso(result.time) == "2023-05-23T14:12:19.620891+00:00"


def test_received_at_comes_from_context_when_parseable():
    mobile = parse(
        event_line(event_source="mobile", time="2026-11-01T10:00:00+00:00", context={"received_at": "2026-11-03T08:00:00.5+00:00"})
    )
    assert us_to_iso(mobile.received_at) == "2026-11-03T08:00:00.500000+00:00"
    assert us_to_iso(mobile.time) == "2026-11-01T10:00:00+00:00"
    broken = parse(event_line(time="2026-11-01T10:00:00+00:00", context={"received_at": "soon"}))
    assert broken.received_at == broken.time


@pytest.mark.parametrize("value, expected", [(6, 6), ("", None), (None, None), ("6", None), (True, None), (2**70, None)])
def test_user_id_is_an_int_or_null(value, expected):
    assert parse(event_line(context={"user_id": value})).user_id == expected


def test_object_payload_and_context_are_json_text():
    result = parse(event_line(event={"a": 1}, context={"course_id": "course-v1:MITx+6.002x+2T2024", "path": "/x"}))
    assert json.loads(result.event) == {"a": 1}
    assert json.loads(result.context)["path"] == "/x"


def test_username_whitespace_is_trimmed():
    assert parse(event_line(username="carol\n")).username == "carol"


def test_internal_bi_prefix_sets_the_stream():
    assert parse(event_line(name="edx.bi.user.account.registered")).stream == "internal_bi"
    assert parse(event_line(name="edx.bidding")).stream == "research"
    custom = LineParser(Config(internal_prefixes=("edx.bi.", "internal.")))
    assert custom.parse(event_line(name="internal.x").encode()).stream == "internal_bi"


def test_export_false_in_payload():
    assert parse(event_line(event={"_export": False})).export is False
    assert parse(event_line(event=json.dumps({"_export": False}), event_source="browser")).export is False
    assert parse(event_line(event={"_export": True})).export is True
    assert parse(event_line(event={"a": 1})).export is True


# --- orgs and course keys ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "course_id, org",
    [
        ("course-v1:MITx+6.002x+2T2024", "MITx"),
        ("MITx/6.002x/2012_Fall", "MITx"),
        ("ccx-v1:DelftX+CTB3365x+2016+ccx@3", "DelftX"),
        ("", None),
        (None, None),
        ("not a key", None),
    ],
)
def test_org_of_course_id(course_id, org):
    assert org_of_course_id(course_id) == org


@pytest.mark.parametrize(
    "url, key",
    [
        ("https://courses.edx.org/courses/course-v1:HarvardX+CS50+X/courseware/abc/def", "course-v1:HarvardX+CS50+X"),
        ("http://courses.edx.org/courses/edX/DemoX/Demo_Course/courseware/d8a6/edx_introduction", "edX/DemoX/Demo_Course"),
        (
            "/courses/course-v1:edX+DemoX+Demo_Course/xblock/block-v1:edX+DemoX+Demo_Course+type@problem+block@93/handler/x",
            "course-v1:edX+DemoX+Demo_Course",
        ),
        (
            "http://local.overhang.io/xblock/block-v1:edX+DemoX+Demo_Course+type@vertical+block@134d?show_title=0",
            "course-v1:edX+DemoX+Demo_Course",
        ),
        ("https://courses.edx.org/courses/course-v1%3AMITx%2B6.002x%2B2T2024/info", "course-v1:MITx+6.002x+2T2024"),
        ("https://courses.edx.org/dashboard", None),
        (None, None),
    ],
)
def test_course_key_in_url(url, key):
    assert course_key_in_url(url) == key


def test_org_resolution_order():
    assert resolve_course_and_org("course-v1:A+B+C", "Z", None, None) == ("course-v1:A+B+C", "Z")
    assert resolve_course_and_org("course-v1:A+B+C", "", None, None) == ("course-v1:A+B+C", "A")
    assert resolve_course_and_org("", "", "https://x/courses/P/Q/R/info", None) == ("P/Q/R", "P")
    assert resolve_course_and_org("", "", None, "/courses/course-v1:E+F+G/courseware") == ("course-v1:E+F+G", "E")
    assert resolve_course_and_org("", "", "https://x/dashboard", "/login") == (None, None)


# --- fingerprints -----------------------------------------------------------------------------


def test_identity_ignores_key_order_whitespace_and_escaping():
    a = '{"event_type":"seq_goto","time":"2026-11-02T10:00:00+00:00","page":"https://x/a/b","username":"é"}'
    b = '{ "username" : "\\u00e9", "page": "https:\\/\\/x\\/a\\/b",  "time": "2026-11-02T10:00:00Z", "event_type": "seq_goto" }'
    ea, eb = parse(a), parse(b)
    assert ea.identity == eb.identity
    assert ea.exact == eb.exact  # same content and same instant: an exact copy
    assert ea.event_id == eb.event_id
    assert ea.tiebreak != eb.tiebreak  # the raw bytes differ


def test_time_and_received_at_are_delivery_fields():
    base = parse(event_line(event_source="mobile", context={"received_at": "2026-11-02T10:00:00+00:00"}))
    later_receipt = parse(event_line(event_source="mobile", context={"received_at": "2026-11-02T11:00:00+00:00"}))
    later_time = parse(
        event_line(event_source="mobile", time="2026-11-02T13:43:36+00:00", context={"received_at": "2026-11-02T10:00:00+00:00"})
    )
    assert base.identity == later_receipt.identity == later_time.identity
    assert len({base.exact, later_receipt.exact, later_time.exact}) == 3
    other = parse(event_line(event_source="mobile", event={"x": 1}, context={"received_at": "2026-11-02T10:00:00+00:00"}))
    assert other.identity != base.identity


def test_excluded_fields_are_configurable():
    parser = LineParser(Config(dedup=DedupConfig(excluded_fields=("time", "context.received_at", "session"))))
    a = parser.parse(event_line(session="s1").encode())
    b = parser.parse(event_line(session="s2").encode())
    assert a.identity == b.identity
    assert PARSER.parse(event_line(session="s1").encode()).identity != PARSER.parse(event_line(session="s2").encode()).identity


def test_timestamp_excluded_only_where_it_stands_in_for_time():
    a = parse('{"name": "x", "timestamp": "2026-11-02T10:00:00+00:00"}')
    b = parse('{"name": "x", "timestamp": "2026-11-02T10:00:01+00:00"}')
    assert a.identity == b.identity
    c = parse('{"name": "x", "time": "2026-11-02T10:00:00+00:00", "timestamp": "a"}')
    d = parse('{"name": "x", "time": "2026-11-02T10:00:00+00:00", "timestamp": "b"}')
    assert c.identity != d.identity


# --- real samples -----------------------------------------------------------------------------


def test_tutor_sample_with_its_deliberate_defects():
    lines = (REAL / "event-routing-backends" / "tracking-log" / "tracking.log").read_bytes().split(b"\n")
    results = [parse(line) for line in lines if line]
    assert len(results) == 12
    rejects = {i + 1: r.reason for i, r in enumerate(results) if isinstance(r, Reject)}
    assert rejects == {3: NOT_JSON, 11: NOT_JSON}  # missing '{' and a line cut mid-string
    line10 = results[9]
    assert isinstance(line10, Event) and line10.name == "edx.grades.subsection.grade_calculated2"
    assert us_to_iso(line10.time) == "2023-05-23T14:12:19.620891+00:00"  # from `timestamp`
    sources = sorted(r.event_source for r in results if isinstance(r, Event))
    assert sources.count("browser") == 2 and sources.count("server") == 8
    assert all(r.org_id == "edX" for r in results if isinstance(r, Event))


def test_analytics_pipeline_samples_parse_except_comments():
    folder = REAL / "edx-analytics-pipeline"
    events = rejects = blank = 0
    for path in sorted(folder.glob("*.log")):
        for line in path.read_bytes().split(b"\n")[:-1] if path.stat().st_size else []:
            result = parse(line)
            if result is None:
                blank += 1
            elif isinstance(result, Reject):
                rejects += 1
                assert line.startswith(b"#") or result.reason == MISSING_EVENT_TYPE, line[:80]
            else:
                events += 1
    assert events > 2400
    assert rejects == 40 + 23  # the `#` comment lines and the 23 two-field stubs without event_type


def test_documentation_samples_pretty_printed_and_invalid_json():
    folder = REAL / "edx-documentation"
    mobile = (folder / "student_event_types.rst--edx.video.played(mobile).json").read_bytes()
    assert parse(b" ".join(mobile.split())).reason == NOT_JSON  # trailing comma, as published
    browser = (folder / "student_event_types.rst--play_video(browser).json").read_text()
    compact = json.dumps(json.loads(browser))
    escaped = " ".join(browser.split())  # keeps the published `\/` escapes
    a, b = parse(compact), parse(escaped)
    assert isinstance(a, Event) and a.event_source == "browser"
    assert a.identity == b.identity and a.exact == b.exact
