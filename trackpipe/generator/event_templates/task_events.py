"""Templates of the events the celery workers write (event_source "task"): grades computed in
the background, course pass/fail changes and certificates; no user, session, IP or page.
"""

from __future__ import annotations

from trackpipe.generator.event_templates.event_parts import EventProvider, RenderedEvent
from trackpipe.generator.vocabulary import LMS


class TaskEvents(EventProvider):
    """The t_* families."""

    def t_grades(self, u, sess, special):
        rnd = self.rnd
        c = self._course(u)
        uid = self.w.user_ids[u]
        tx = self.uuid()
        p = rnd.random()
        if p < 0.55:
            name = "edx.grades.subsection.grade_calculated"
            event = self._subsection_grade(c, uid, tx, lambda: f"{self.ri(1, 29):02d} 20:55:53.{self.ri(10**6):06d}")
        elif p < 0.85:
            name = "edx.grades.course.grade_calculated"
            event = self._course_grade(c, uid, tx, lambda: "")
        elif p < 0.95:
            name = self.pick(("edx.course.grade.passed.first_time", "edx.course.grade.now_passed", "edx.course.grade.now_failed"))
            event = (
                f'{{"user_id": "{uid}", "course_id": "{c.key}", "event_transaction_id": "{tx}", '
                f'"event_transaction_type": "edx.grades.problem.submitted"}}'
            )
        else:
            name = "edx.certificate.created"
            event = (
                f'{{"user_id": {uid}, "course_id": "{c.key}", "certificate_id": "{self.hx(32)}", '
                f'"certificate_url": "{LMS}/certificates/{self.hx(32)}", "enrollment_mode": "verified", '
                f'"generation_mode": "batch"}}'
            )
        org_id, course_id, org = self._ctx_variant(c)
        ctx = f'{{"course_id": "{course_id}", "org_id": "{org_id}", "enterprise_uuid": ""}}'
        return RenderedEvent(
            f'{{"name": "{name}", "context": {ctx}, "username": "", "session": "", "ip": "", "agent": "", '
            f'"host": "", "referer": "", "accept_language": "", "event": {event}, \x01, '
            f'"event_type": "{name}", "event_source": "task", "page": null}}',
            org,
            None,
            None,
        )
