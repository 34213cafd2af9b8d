"""Tier 1: the duplicate rule on fingerprint records (no Beam)."""

from __future__ import annotations

import itertools
import json
import random

import numpy as np

from trackpipe.config import Config, DedupConfig
from trackpipe.events.duplicates import CLIENT_RESEND, EXACT, FP_DTYPE, KEEP, decide
from trackpipe.events.parse import LineParser

PARSER = LineParser(Config())
WINDOW = 5_000_000


def line(source="browser", t="2026-11-02T10:00:00.000000+00:00", received=None, **extra):
    obj = {"event_type": "seq_goto", "event_source": source, "username": "u1", "session": "s1", "time": t, "event": '{"id": "b1"}'}
    obj.update(extra)
    if received:
        obj["context"] = {"received_at": received}
    return json.dumps(obj)


def records(lines: list[str], parser: LineParser = PARSER) -> np.ndarray:
    recs = np.empty(len(lines), FP_DTYPE)
    for row, text in enumerate(lines):
        ev = parser.parse(text.encode())
        recs[row] = (
            ev.identity >> 64,
            ev.identity & (2**64 - 1),
            ev.exact >> 64,
            ev.exact & (2**64 - 1),
            ev.received_at,
            ev.time,
            ev.tiebreak,
            row,
            ev.client,
            ev.session_key,
        )
    return recs


def fates(lines: list[str], window_us: int = WINDOW, parser: LineParser = PARSER) -> dict[int, tuple]:
    """row -> (kind, copies) for rows with a decision; kept-alone rows are absent."""
    out = decide([("chunk", records(lines, parser))], window_us)
    return {int(r["row"]): (int(r["kind"]), int(r["copies"])) for r in out.get("chunk", [])}


def test_exact_copies_of_server_lines_are_removed():
    text = line("server")
    assert fates([text, text, text]) == {0: (KEEP, 3), 1: (EXACT, 0), 2: (EXACT, 0)}


def test_browser_resends_within_the_window_are_removed():
    lines = [line(t="2026-11-02T10:00:00.000000+00:00"), line(t="2026-11-02T10:00:00.100000+00:00"), line(t="2026-11-02T10:00:02+00:00")]
    assert fates(lines) == {0: (KEEP, 3), 1: (CLIENT_RESEND, 0), 2: (CLIENT_RESEND, 0)}


def test_mobile_resend_has_same_time_and_later_received_at():
    first = line("mobile", received="2026-11-02T10:00:05+00:00")
    again = line("mobile", received="2026-11-02T12:30:00+00:00")
    assert fates([again, first]) == {1: (KEEP, 2), 0: (CLIENT_RESEND, 0)}  # the earliest arrival is kept


def test_legit_repeat_thirty_minutes_later_stays():
    assert fates([line(), line(t="2026-11-02T10:30:00+00:00")]) == {}


def test_server_events_with_same_identity_one_second_apart_stay():
    assert fates([line("server"), line("server", t="2026-11-02T10:00:01+00:00")]) == {}


def test_copies_are_compared_with_the_kept_copy_not_with_dropped_ones():
    t0, t4, t8 = "2026-11-02T10:00:00+00:00", "2026-11-02T10:00:04+00:00", "2026-11-02T10:00:08+00:00"
    # 4 s after the kept one: a re-send; 8 s after the kept one (4 s after the dropped one): new.
    assert fates([line(t=t0), line(t=t4), line(t=t8)]) == {0: (KEEP, 2), 1: (CLIENT_RESEND, 0)}


def test_a_late_mobile_resend_matches_its_own_original_among_several_kept():
    a = line("mobile", t="2026-11-01T09:00:00+00:00", received="2026-11-02T10:00:00+00:00")
    b = line("mobile", t="2026-11-01T10:00:00+00:00", received="2026-11-02T10:00:00+00:00")
    a_again = line("mobile", t="2026-11-01T09:00:00+00:00", received="2026-11-02T18:00:00+00:00")
    assert fates([a, b, a_again]) == {0: (KEEP, 2), 2: (CLIENT_RESEND, 0)}


def test_exact_copy_of_a_client_event_is_exact_kind():
    text = line("browser")
    assert fates([text, text]) == {0: (KEEP, 2), 1: (EXACT, 0)}


def test_different_escaping_of_the_same_content_is_an_exact_copy():
    a = '{"event_type":"seq_goto","event_source":"server","time":"2026-11-02T10:00:00+00:00","page":"https://x/y"}'
    b = '{"page": "https:\\/\\/x\\/y", "time": "2026-11-02T10:00:00Z", "event_source": "server", "event_type": "seq_goto"}'
    result = fates([a, b])
    assert sorted(result.values()) == [(KEEP, 2), (EXACT, 0)]


def test_window_is_configurable():
    lines = [line(), line(t="2026-11-02T10:00:03+00:00")]
    assert fates(lines, window_us=2_000_000) == {}
    assert fates(lines, window_us=5_000_000) == {0: (KEEP, 2), 1: (CLIENT_RESEND, 0)}


def test_client_sources_are_configurable():
    parser = LineParser(Config(dedup=DedupConfig(client_sources=("browser",))))
    mobile = [line("mobile", received="2026-11-02T10:00:05+00:00"), line("mobile", received="2026-11-02T10:01:00+00:00")]
    assert fates(mobile, parser=parser) == {}
    assert fates(mobile) == {0: (KEEP, 2), 1: (CLIENT_RESEND, 0)}


def test_gap_and_kept_fingerprint_are_reported():
    lines = [line(t="2026-11-02T10:00:01.5+00:00"), line(t="2026-11-02T10:00:00+00:00")]
    out = decide([("c", records(lines))], WINDOW)["c"]
    removed = out[out["kind"] == CLIENT_RESEND][0]
    kept_event = PARSER.parse(lines[1].encode())
    assert int(removed["gap"]) == 1_500_000
    assert (int(removed["kept_hi"]) << 64 | int(removed["kept_lo"])) == kept_event.exact


def test_ties_are_broken_by_data_not_by_order():
    """Byte-identical lines in several chunks: the kept one is the first by (file, line)."""
    text = line("server")
    recs = records([text])
    parts = [("b.log\x00000000", recs.copy()), ("a.log\x00000003", recs.copy()), ("a.log\x00000001", recs.copy())]
    for perm in itertools.permutations(parts):
        out = decide(list(perm), WINDOW)
        assert int(out["a.log\x00000001"]["kind"][0]) == KEEP
        assert set(out) == {"a.log\x00000001", "a.log\x00000003", "b.log\x00000000"}


def test_result_is_independent_of_input_order():
    rng = random.Random(7)
    lines = []
    for _ in range(300):
        src = rng.choice(["browser", "mobile", "server"])
        t = f"2026-11-02T10:{rng.randrange(60):02d}:{rng.randrange(60):02d}.{rng.randrange(10**6):06d}+00:00"
        lines.append(line(src, t=t, event=f'{{"id": "{rng.randrange(20)}"}}'))
    lines += [lines[i] for i in range(0, 300, 7)]
    recs = records(lines)
    expected = decide([("c", recs)], WINDOW)["c"]
    for seed in range(3):
        order = np.random.default_rng(seed).permutation(len(recs))
        shuffled = recs[order]
        got = decide([("c", shuffled)], WINDOW)["c"]
        # decisions name rows by their `row` field, so they compare directly once sorted
        assert sorted(got.tolist()) == sorted(expected.tolist())


# --- round two: a re-send has nothing else of its session in between ----------------------------

T = "2026-11-02T10:00:{:06.3f}+00:00".format


def test_a_double_fired_click_with_nothing_between_is_a_resend():
    assert fates([line(t=T(0)), line(t=T(0.3))]) == {0: (KEEP, 2), 1: (CLIENT_RESEND, 0)}


def test_a_repeat_after_another_event_of_the_session_is_a_new_action():
    graded = line(t=T(0.5), event_type="problem_graded", event='{"answer": 1}')
    assert fates([line(t=T(0)), graded, line(t=T(1.1))]) == {}


def test_a_server_event_of_the_same_session_in_between_counts_too():
    server = line("server", t=T(0.2), event_type="problem_check", event={"attempts": 2})
    assert fates([line(t=T(0)), server, line(t=T(2))]) == {}


def test_events_of_other_sessions_or_users_in_between_do_not_count():
    other_session = line(t=T(0.5), event_type="problem_graded", session="s2")
    other_user = line(t=T(0.6), event_type="problem_graded", username="u2")
    assert fates([line(t=T(0)), other_session, other_user, line(t=T(1))]) == {0: (KEEP, 2), 3: (CLIENT_RESEND, 0)}


def test_copies_of_the_same_event_in_between_do_not_count():
    assert fates([line(t=T(0)), line(t=T(0.1)), line(t=T(0.2))]) == {0: (KEEP, 3), 1: (CLIENT_RESEND, 0), 2: (CLIENT_RESEND, 0)}


def test_an_event_at_the_same_instant_is_not_strictly_between():
    graded = line(t=T(1), event_type="problem_graded")
    assert fates([line(t=T(0)), graded, line(t=T(1))]) == {0: (KEEP, 2), 2: (CLIENT_RESEND, 0)}


def test_the_resend_folds_into_the_kept_copy_with_nothing_between():
    """Kept at 0 s, another action at 1 s, kept again at 2 s (a new action), a re-send at 2.1 s:
    it is a re-send of the second, not the first."""
    seq = line(t=T(1), event_type="seq_goto", event='{"id": "other"}')
    out = fates([line(t=T(0)), seq, line(t=T(2)), line(t=T(2.1))])
    assert out == {2: (KEEP, 2), 3: (CLIENT_RESEND, 0)}


def test_events_without_a_session_keep_the_window_rule():
    between = line(t=T(0.5), event_type="problem_graded", session="")
    assert fates([line(t=T(0), session=""), between, line(t=T(1), session="")]) == {0: (KEEP, 2), 2: (CLIENT_RESEND, 0)}


def test_mobile_sessions_come_from_the_device_id():
    def mobile(t, received, name="edx.video.played"):
        obj = json.loads(line("mobile", t=t, session="", event_type=name))
        obj["context"] = {"received_at": received, "client": {"device": {"id": "dev-1"}}}
        return json.dumps(obj)

    first = mobile(T(0), "2026-11-02T10:01:00+00:00")
    resent = mobile(T(0), "2026-11-02T10:05:00+00:00")  # same time, later arrival: a re-send
    paused = mobile(T(2), "2026-11-02T10:01:00+00:00", name="edx.video.paused")
    again = mobile(T(4), "2026-11-02T10:01:00+00:00")  # played again after a pause: a new action
    assert PARSER.parse(first.encode()).session_key != 0
    assert fates([first, resent, paused, again]) == {0: (KEEP, 2), 1: (CLIENT_RESEND, 0)}


def test_leaving_a_session_field_out_of_the_identity_turns_sessions_off():
    parser = LineParser(Config(dedup=DedupConfig(excluded_fields=("time", "context.received_at", "session"))))
    assert parser.parse(line().encode()).session_key == 0
    assert PARSER.parse(line().encode()).session_key != 0


def test_shards_follow_the_session_so_a_session_is_decided_in_one_place():
    from trackpipe.events.duplicates import shard_of

    recs = records([line(t=T(0)), line(t=T(1), event_type="problem_graded"), line(t=T(2), session="")])
    shards = shard_of(recs, 32)
    assert shards[0] == shards[1]  # same session, different identities
    assert shards[2] == int(recs["id_hi"][2] % np.uint64(32))  # no session: by identity
