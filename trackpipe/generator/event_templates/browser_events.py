"""Templates of the events the learner's browser sends to the LMS (event_source "browser"):
video player events, problem checks and graded problems (with the problem's HTML), sequence
navigation, links and outline clicks, page closes, resume clicks, and the edx.bi.* upsell events.
"""

from __future__ import annotations

import json

from trackpipe.generator.event_templates.event_parts import EventProvider, RenderedEvent
from trackpipe.generator.vocabulary import ANSWER_TEXT, FORUM_TEXT, LMS, SITE_HOST
from trackpipe.generator.world import Course, block_key


class BrowserEvents(EventProvider):
    """The b_* families."""

    def _browser(self, name, u, sess, event, c: Course | None, page, page_has_key):
        un, uid, ip, ag, al = self._user(u)
        if c is None:
            org_id, course_id, org = "", "", None
        else:
            org_id, course_id, org = self._ctx_variant(c, allow_page_only=page_has_key)
        ctx = f'{{"user_id": {self._uid(uid)}, "path": "/event", "course_id": "{course_id}", "org_id": "{org_id}", "enterprise_uuid": ""}}'
        ref = page if self.rnd.random() < 0.9 else f"{LMS}/dashboard"
        return RenderedEvent(
            f'{{"name": "{name}", "context": {ctx}, "username": "{un}", "session": "{sess}", "ip": "{ip}", '
            f'"agent": {ag}, "host": "{SITE_HOST}", "referer": "{ref}", "accept_language": {al}, '
            f'"event": {event}, \x01, "event_type": "{name}", "event_source": "browser", "page": "{page}"}}',
            org,
            uid,
            ip,
        )

    def _browser_page(self, c: Course):
        """(page URL, whether it names the course key)."""
        rnd = self.rnd
        if rnd.random() < 0.35 and c.v1:  # the xblock iframe: a block key, not a course key
            return (
                f"{LMS}/xblock/{block_key(c, 'vertical', self.pick(c.verticals)[1])}"
                f"?show_title=0&show_bookmark_button=0&recheck_access=1&view=student_view"
            ), False
        return self._page(c)[0], True

    def b_video(self, u, sess, special):
        rnd = self.rnd
        c = self._course(u)
        h, vid, usage, yt, dur = self.pick(c.videos)
        name = self.pick(
            (
                "play_video",
                "play_video",
                "pause_video",
                "pause_video",
                "seek_video",
                "load_video",
                "stop_video",
                "speed_change_video",
                "show_transcript",
                "hide_transcript",
            )
        )
        code = "html5" if rnd.random() < 0.4 else yt
        ct = f"{rnd.random() * dur:.3f}".rstrip("0").rstrip(".")
        if name == "seek_video":
            ev = (
                f'{{\\"id\\":\\"{vid}\\",\\"code\\":\\"{code}\\",\\"old_time\\":{ct},'
                f'\\"new_time\\":{self.ri(dur)},\\"type\\":\\"{self.pick(("onSlideSeek", "onSkipSeek", "onClickSeek"))}\\",'
                f'\\"duration\\":{dur}}}'
            )
        elif name == "speed_change_video":
            ev = (
                f'{{\\"id\\":\\"{vid}\\",\\"code\\":\\"{code}\\",\\"current_time\\":{ct},'
                f'\\"old_speed\\":\\"1.0\\",\\"new_speed\\":\\"{self.pick(("1.25", "1.50", "2.0", "0.75"))}\\",\\"duration\\":{dur}}}'
            )
        elif name == "load_video":
            ev = f'{{\\"id\\":\\"{vid}\\",\\"code\\":\\"{code}\\",\\"duration\\":{dur},\\"currentTime\\":{ct}}}'
        elif name in ("show_transcript", "hide_transcript"):
            ev = f'{{\\"id\\":\\"{vid}\\",\\"code\\":\\"{code}\\",\\"current_time\\":{ct},\\"duration\\":{dur}}}'
        else:
            ev = f'{{\\"id\\":\\"{vid}\\",\\"currentTime\\":{ct},\\"code\\":\\"{code}\\",\\"duration\\":{dur}}}'
        page, has_key = self._browser_page(c)
        return self._browser(name, u, sess, f'"{ev}"', c, page, has_key)

    def b_problem_check(self, u, sess, special):
        c = self._course(u)
        h, usage, dn = self.pick(c.problems)
        q = "&".join(f"input_{h}_{k + 2}_1=choice_{self.ri(5)}" for k in range(self.ri(1, 4)))
        page, has_key = self._browser_page(c)
        return self._browser("problem_check", u, sess, f'"{q}"', c, page, has_key)

    def b_problem_graded(self, u, sess, special):
        c = self._course(u)
        h, usage, dn = self.pick(c.problems)
        q = f"input_{h}_2_1=choice_{self.ri(5)}"
        n_par = self.ri(30, 80) if special == 2 else self.ri(2, 8)
        parts = [
            f'\n\n\n\n<h3 class="hd hd-3 problem-header" id="{h}-problem-title" aria-describedby="{usage}-problem-progress" '
            f'tabindex="-1">\n  {json.loads(dn)}\n</h3>\n\n<div class="problem-progress" id="{usage}-problem-progress"></div>\n\n'
            f'<div class="problem">\n  <div>\n'
        ]
        for k in range(n_par):
            parts.append(
                f"  <p>{self.pick(FORUM_TEXT).strip()} {self.pick(ANSWER_TEXT).strip()}</p>\n"
                f'  <div class="wrapper-problem-response" tabindex="-1" aria-label="Question {k + 1}" role="group">'
                f'<div class="choicegroup capa_inputtype" id="inputtype_{h}_{k + 2}_1">\n'
                f'    <fieldset aria-describedby="status_{h}_{k + 2}_1">\n'
                f'      <input type="radio" name="input_{h}_{k + 2}_1" id="input_{h}_{k + 2}_1_choice_{self.ri(5)}" '
                f'class="field-input input-radio" value="choice_{self.ri(5)}"/> {self.pick(ANSWER_TEXT).strip()}\n'
                f"    </fieldset>\n  </div></div>\n"
            )
        parts.append("  </div>\n</div>\n")
        html = "".join(parts)
        ev = "[" + json.dumps(q) + ", " + json.dumps(html) + "]"
        page, has_key = self._browser_page(c)
        return self._browser("problem_graded", u, sess, ev, c, page, has_key)

    def b_problem_show(self, u, sess, special):
        c = self._course(u)
        h, usage, dn = self.pick(c.problems)
        page, has_key = self._browser_page(c)
        return self._browser("problem_show", u, sess, f'"{{\\"problem\\":\\"{usage}\\"}}"', c, page, has_key)

    def b_seq(self, u, sess, special):
        rnd = self.rnd
        c = self._course(u)
        ch, sq = self.pick(c.seqs)
        name = self.pick(("seq_goto", "seq_next", "seq_next", "seq_prev"))
        n = self.ri(2, 9)
        old = self.ri(1, n + 1)
        new = min(n, old + 1) if name == "seq_next" else max(1, old - 1) if name == "seq_prev" else self.ri(1, n + 1)
        key = block_key(c, "sequential", sq)
        if rnd.random() < 0.5:
            ev = f'"{{\\"old\\":{old},\\"new\\":{new},\\"id\\":\\"{key}\\"}}"'
        else:
            ev = (
                f'"{{\\"current_tab\\":{old},\\"tab_count\\":{n},\\"target_tab\\":{new},'
                f'\\"widget_placement\\":\\"{self.pick(("top", "bottom"))}\\",\\"id\\":\\"{key}\\"}}"'
            )
        page, has_key = self._page(c)[0], True
        return self._browser(name, u, sess, ev, c, page, has_key)

    def b_link(self, u, sess, special):
        c = self._course(u)
        page, has_key = self._browser_page(c)
        target = self.pick(
            (
                "https://www.youtube.com/watch?v=" + self.pick(c.videos)[3],
                f"{c.lms}/progress",
                "https://docs.python.org/3/library/functions.html",
                f"{c.lms}/course/",
                "https://en.wikipedia.org/wiki/Fourier_transform",
                f"{LMS}/dashboard",
                f"{c.lms}/jump_to/{block_key(c, 'vertical', self.pick(c.verticals)[1])}",
            )
        )
        return self._browser("edx.ui.lms.link_clicked", u, sess, f'{{"current_url": "{page}", "target_url": "{target}"}}', c, page, has_key)

    def b_outline(self, u, sess, special):
        c = self._course(u)
        ch, sq = self.pick(c.seqs)
        tgt = f"{c.lms}/jump_to/{block_key(c, 'sequential', sq)}"
        page = f"{c.lms}/course/"
        return self._browser(
            "edx.ui.lms.outline.selected",
            u,
            sess,
            f'{{"current_url": "{page}", "target_name": {self.pick(c.problems)[2]}, '
            f'"target_url": "{tgt}", "widget_placement": "{self.pick(("accordion", "course-outline"))}"}}',
            c,
            page,
            True,
        )

    def b_page_close(self, u, sess, special):
        rnd = self.rnd
        if rnd.random() < 0.2:
            page = self.pick((f"{LMS}/dashboard", f"{LMS}/account/settings", f"{LMS}/courses"))
            return self._browser("page_close", u, sess, '""', None, page, False)
        c = self._course(u)
        page, has_key = self._browser_page(c)
        return self._browser("page_close", u, sess, '""', c, page, has_key)

    def b_resume(self, u, sess, special):
        c = self._course(u)
        page = f"{c.lms}/course/"
        url = f"{c.lms}/jump_to/{block_key(c, 'vertical', self.pick(c.verticals)[1])}"
        return self._browser(
            "edx.course.home.resume_course.clicked",
            u,
            sess,
            f'{{"event_type": "{self.pick(("resume", "start"))}", "url": "{url}"}}',
            c,
            page,
            True,
        )

    def b_bi(self, u, sess, special):
        c = self._course(u)
        name = self.pick(
            (
                "edx.bi.course.upgrade.sidebarupsell.displayed",
                "edx.bi.course.upgrade.sidebarupsell.displayed",
                "edx.bi.course.upgrade.sidebarupsell.clicked",
                "edx.bi.course.upgrade.sock.displayed",
            )
        )
        event = (
            f'{{"courserun_key": "{c.key}", "linkCategory": "green_upgrade", "linkName": "course_home_sidebar_green", '
            f'"linkType": "button", "pageName": "course_home", "org_key": "{c.org}", "value": {self.pick((49, 99, 149, 199))}}}'
        )
        return self._browser(name, u, sess, event, c, f"{c.lms}/course/", True)
