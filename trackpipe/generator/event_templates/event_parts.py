"""What every event template is made of: the rendered event, and the provider base class with
the parts the sources share (the user's fields, one of the user's courses, a course page, the
ways an event's context names its course and org, the grade payloads of server and task events).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trackpipe.generator.world import Course, block_key

if TYPE_CHECKING:
    from trackpipe.generator.generate import CorpusGenerator


class RenderedEvent:
    """An event rendered as a template: '\x01' stands for the time field, '\x02' for the value
    of context.received_at. Identity = the template; the line = the template filled in."""

    __slots__ = ("tpl", "org", "uid", "ip")

    def __init__(self, tpl, org, uid, ip):
        self.tpl, self.org, self.uid, self.ip = tpl, org, uid, ip


class EventProvider:
    """Base of the template providers (one per event source). A provider draws from the
    generator's random stream through the generator's own helpers, bound here once: the
    templates are the hot path."""

    def __init__(self, gen: CorpusGenerator):
        self.rnd = gen.rnd
        self.pick, self.ri, self.hx, self.uuid = gen.pick, gen.ri, gen.hx, gen.uuid
        self.w = gen.w

    def _user(self, u: int):
        w = self.w
        return w.usernames[u], w.user_ids[u], w.ips[u], w.agents_q[w.agent[u]], w.langs_q[w.lang[u]]

    def _course(self, u: int) -> Course:
        return self.w.courses[self.w.user_courses[u][self.ri(3)]]

    def _uid(self, uid: str) -> str:
        p = self.rnd.random()
        return uid if p >= 0.017 else ('""' if p < 0.01 else "null")

    def _page(self, c: Course) -> tuple[str, tuple[str, str]]:
        """A course page URL (legacy courseware, or the learning MFE for new-style keys)."""
        rnd = self.rnd
        ch, sq = self.pick(c.seqs)
        if c.v1 and rnd.random() < 0.5:
            vb = block_key(c, "vertical", self.pick(c.verticals)[1])
            return f"{c.mfe}/{block_key(c, 'sequential', sq)}/{vb}", (ch, sq)
        return f"{c.lms}/courseware/{ch}/{sq}/{self.ri(1, 6)}", (ch, sq)

    def _ctx_variant(self, c: Course, allow_page_only: bool = False) -> tuple[str, str, str | None]:
        """(org_id, course_id, org as derived): mostly set; sometimes the org must come from
        the course id; for browser events sometimes only the page URL names the course."""
        p = self.rnd.random()
        if p < 0.94:
            return c.org, c.key, c.org
        if p < 0.97 or not allow_page_only:
            return "", c.key, c.org
        return "", "", c.org  # caller guarantees the course key is in the page

    def _subsection_grade(self, c, uid, tx, first_attempted) -> str:
        """Payload of edx.grades.subsection.grade_calculated; `first_attempted()` draws the day and
        time of the first attempt (October), at the same point of the random stream as before."""
        tot = float(self.ri(1, 12))
        earned = float(self.ri(int(tot) + 1))
        block = block_key(c, "sequential", self.pick(c.seqs)[1])
        return (
            f'{{"user_id": "{uid}", "course_id": "{c.key}", "block_id": "{block}", '
            f'"course_version": "{c.version}", "weighted_total_earned": {earned}, "weighted_total_possible": {tot}, '
            f'"weighted_graded_earned": {earned}, "weighted_graded_possible": {tot}, '
            f'"first_attempted": "2026-10-{first_attempted()}+00:00", '
            f'"subtree_edited_timestamp": "2026-09-{self.ri(1, 29):02d} 15:47:38.629000+00:00", '
            f'"event_transaction_id": "{tx}", "event_transaction_type": "edx.grades.problem.submitted", '
            f'"visible_blocks_hash": "{self.hx(27)}="}}'
        )

    def _course_grade(self, c, uid, tx, letter_grade) -> str:
        """Payload of edx.grades.course.grade_calculated; `letter_grade()` gives the letter grade,
        drawn (or not) at its place in the random stream."""
        return (
            f'{{"user_id": "{uid}", "course_id": "{c.key}", "course_version": "{c.version}", '
            f'"percent_grade": {self.ri(101) / 100}, "letter_grade": "{letter_grade()}", '
            f'"course_edited_timestamp": "2026-09-{self.ri(1, 29):02d} 15:47:38.629000+00:00", '
            f'"event_transaction_id": "{tx}", "event_transaction_type": "edx.grades.problem.submitted", '
            f'"grading_policy_hash": "{self.hx(27)}="}}'
        )
