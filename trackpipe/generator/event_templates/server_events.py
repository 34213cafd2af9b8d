"""Templates of the events the LMS writes itself (event_source "server"): implicit events
(one per request, the URL path as event_type), problem checks, grades, enrollments, forum
activity, hints and answers shown, and the edx.bi.* account events.
"""

from __future__ import annotations

import json

import orjson

from trackpipe.generator.event_templates.event_parts import EventProvider, RenderedEvent
from trackpipe.generator.vocabulary import ANSWER_TEXT, FORUM_TEXT, FORUM_TITLES, LMS, SITE_HOST
from trackpipe.generator.world import block_key, quote


class ServerEvents(EventProvider):
    """The s_* families."""

    def _server(self, name, ctx, u, sess, event, page="null", event_type=None, with_name=True, username=None, referer=None):
        un, uid, ip, ag, al = self._user(u)
        username = '"' + un + '"' if username is None else username
        et = '"' + name + '"' if event_type is None else event_type
        ref = '""' if referer is None else '"' + referer + '"'
        head = f'{{"name": {et}, ' if with_name else "{"
        return (
            f'{head}"context": {ctx}, "username": {username}, "session": "{sess}", "ip": "{ip}", '
            f'"agent": {ag}, "host": "{SITE_HOST}", "referer": {ref}, "accept_language": {al}, '
            f'"event": {event}, \x01, "event_type": {et}, "event_source": "server", "page": {page}}}'
        )

    def s_implicit(self, u, sess, special):
        rnd = self.rnd
        c = self._course(u)
        un, uid, ip, ag, al = self._user(u)
        p = rnd.random()
        module = ""
        get, post = "{}", "{}"
        page, (ch, sq) = self._page(c)
        if p < 0.35:
            path = f"/courses/{c.key}/courseware/{ch}/{sq}/"
            if rnd.random() < 0.5:
                path += f"{self.ri(1, 6)}"
                get = f'{{"activate_block_id": ["{block_key(c, "vertical", self.pick(c.verticals)[1])}"]}}'
        elif p < 0.60:
            h, usage, dn = self.pick(c.problems)
            path = f"/courses/{c.key}/xblock/{usage}/handler/xmodule_handler/problem_check"
            module = f', "module": {{"display_name": {dn}, "usage_key": "{usage}"}}'
            if rnd.random() < 0.75:
                post = ", ".join(f'"input_{h}_{k + 2}_1": ["choice_{self.ri(4)}"]' for k in range(self.ri(1, 4)))
            else:  # free-text answers: long ones push the payload past 512 characters
                text = "".join(self.pick(ANSWER_TEXT) for _ in range(self.ri(1, 14)))
                post = f'"input_{h}_2_1": [{json.dumps(text)}]'
            post = "{" + post + "}"
        elif p < 0.75:
            h, vid, usage, yt, dur = self.pick(c.videos)
            path = f"/courses/{c.key}/xblock/{usage}/handler/xmodule_handler/save_user_state"
            pos = self.ri(dur)
            post = (
                f'{{"saved_video_position": ["{pos // 3600:02d}:{pos // 60 % 60:02d}:{pos % 60:02d}"], '
                f'"speed": ["{self.pick(("1.00", "1.25", "1.50", "2.00", "0.75"))}"]}}'
            )
        elif p < 0.85:
            path = f"/courses/{c.key}/{self.pick(('progress', 'course/', 'dates', 'bookmarks/', 'instructor'))}"
        elif p < 0.93:
            path = f"/api/courseware/sequence/{block_key(c, 'sequential', sq)}"
        else:
            disc = self.pick(c.discussions)
            path = f"/courses/{c.key}/discussion/forum/{disc}/threads/{self.hx(24)}"
            if rnd.random() < 0.4:
                text = "".join(self.pick(FORUM_TEXT) for _ in range(self.ri(1, 12)))
                post = f'{{"body": [{json.dumps(text)}], "thread_type": ["discussion"]}}'
        payload = f'{{"GET": {get}, "POST": {post}}}' if rnd.random() < 0.7 else f'{{"POST": {post}, "GET": {get}}}'
        if len(payload) > 512:
            payload = payload[:512]
        event = json.dumps(payload)
        q = rnd.random()
        if q < 0.03 and path.startswith("/courses/"):  # the org is only in the URL path of event_type
            org_id, course_id, org = "", "", c.org
        else:
            org_id, course_id, org = self._ctx_variant(c)
        uidv = self._uid(uid)
        ctx = (
            f'{{"course_id": "{course_id}", "course_user_tags": {{}}, "user_id": {uidv}, "path": "{path}", '
            f'"org_id": "{org_id}", "enterprise_uuid": ""{module}}}'
        )
        referer = page if rnd.random() < 0.8 else f"{c.lms}/course/"
        if rnd.random() < 0.1:  # older writer: no name, no session, another key order
            src = ', "event_source": "server"' if rnd.random() < 0.7 else ""
            tpl = (
                f'{{"username": "{un}", "event_type": "{path}", "ip": "{ip}", "agent": {ag}, '
                f'"host": "{SITE_HOST}", "referer": "{referer}", "accept_language": {al}, "event": {event}{src}, '
                f'"context": {ctx}, \x01, "page": null}}'
            )
        else:
            tpl = self._server(path, ctx, u, sess, event, referer=referer)
        return RenderedEvent(tpl, org, uid, ip)

    def s_implicit_noorg(self, u, sess, special):
        rnd = self.rnd
        un, uid, ip, ag, al = self._user(u)
        path = self.pick(
            (
                "/dashboard",
                "/dashboard",
                "/login_ajax",
                "/account/settings",
                "/",
                f"/api/user/v1/accounts/{un}",
                "/api/enrollment/v1/enrollment",
                "/courses",
                "/api/learner_home/init",
                "/notifications/",
                "/logout",
                "/register",
            )
        )
        post = "{}"
        username, uidv = '"' + un + '"', uid
        if path in ("/", "/login_ajax", "/register", "/courses") and rnd.random() < 0.5:
            username, uidv = '""', self.pick(('""', "null"))
        if path == "/login_ajax":
            post = f'{{"email": ["{un}@example.com"], "password": "********", "remember": ["{self.pick(("true", "false"))}"]}}'
        payload = f'{{"GET": {{}}, "POST": {post}}}'
        ctx = f'{{"course_id": "", "org_id": "", "user_id": {uidv}, "path": "{path}", "enterprise_uuid": ""}}'
        ref = self.pick((f"{LMS}/dashboard", f"{LMS}/", "https://www.edx.org/", f"{LMS}/login", ""))
        return RenderedEvent(
            self._server(path, ctx, u, sess, orjson.dumps(payload).decode(), username=username, referer=ref),
            None,
            None if uidv in ('""', "null") else uid,
            ip,
        )

    def s_problem_check(self, u, sess, special):
        rnd = self.rnd
        c = self._course(u)
        un, uid, ip, ag, al = self._user(u)
        h, usage, dn = self.pick(c.problems)
        n_in = self.ri(1, 5)
        ids = [f"{h}_{k + 2}_1" for k in range(n_in)]
        grade = self.ri(n_in + 1)
        corr = [rnd.random() < grade / n_in for _ in ids]
        sub, cmap, ans, st_ans, inp = [], [], [], [], []
        for i, ok in zip(ids, corr):
            ch = self.ri(5)
            q = self.pick(ANSWER_TEXT)
            sub.append(
                f'"{i}": {{"input_type": "choicegroup", "question": {json.dumps(q)}, '
                f'"response_type": "multiplechoiceresponse", "answer": "Option {ch + 1}: {q[:30].strip()}", '
                f'"variant": "", "correct": {"true" if ok else "false"}}}'
            )
            msg = (
                '""'
                if rnd.random() < 0.6
                else json.dumps(
                    f'<div class="feedback-hint-{"correct" if ok else "incorrect"}"><div class="hint-label">'
                    f'{"Correct" if ok else "Incorrect"}: </div><div class="hint-text">{self.pick(FORUM_TEXT).strip()}</div></div>'
                )
            )
            cmap.append(
                f'"{i}": {{"correctness": "{"correct" if ok else "incorrect"}", "npoints": null, '
                f'"msg": {msg}, "hint": "", "hintmode": null, "queuestate": null, "answervariable": null}}'
            )
            ans.append(f'"{i}": "choice_{ch}"')
            st_ans.append(f'"{i}": "choice_{self.ri(5)}"')
            inp.append(f'"{i}": {{}}')
        event = (
            f'{{"state": {{"seed": 1, "student_answers": {{{", ".join(st_ans)}}}, "has_saved_answers": false, '
            f'"correct_map": {{}}, "input_state": {{{", ".join(inp)}}}, "done": null}}, "problem_id": "{usage}", '
            f'"answers": {{{", ".join(ans)}}}, "grade": {grade}, "max_grade": {n_in}, '
            f'"correct_map": {{{", ".join(cmap)}}}, "success": "{"correct" if grade == n_in else "incorrect"}", '
            f'"attempts": {self.ri(1, 4)}, "submission": {{{", ".join(sub)}}}}}'
        )
        ctx, org = self._problem_context(c, usage, dn, uid, asides=True)
        page, _ = self._page(c)
        return RenderedEvent(self._server("problem_check", ctx, u, sess, event, page='"x_module"', referer=page), org, uid, ip)

    def _problem_context(self, c, usage, dn, uid, asides: bool) -> tuple[str, str]:
        """The `context` of a server event raised by a problem's handler, and the event's org."""
        org_id, course_id, org = self._ctx_variant(c)
        path = f"/courses/{c.key}/xblock/{usage}/handler/xmodule_handler/problem_check"
        tail = ', "asides": {}' if asides else ""
        ctx = (
            f'{{"course_id": "{course_id}", "course_user_tags": {{}}, "user_id": {self._uid(uid)}, "path": "{path}", '
            f'"org_id": "{org_id}", "enterprise_uuid": "", "module": {{"display_name": {dn}, "usage_key": "{usage}"}}{tail}}}'
        )
        return ctx, org

    def s_grades(self, u, sess, special):
        rnd = self.rnd
        c = self._course(u)
        un, uid, ip, ag, al = self._user(u)
        h, usage, dn = self.pick(c.problems)
        p = rnd.random()
        tx = self.uuid()
        if p < 0.5:
            name = "edx.grades.problem.submitted"
            wp = self.ri(1, 4)
            event = (
                f'{{"user_id": "{uid}", "course_id": "{c.key}", "problem_id": "{usage}", "event_transaction_id": "{tx}", '
                f'"event_transaction_type": "edx.grades.problem.submitted", "weighted_earned": {self.ri(wp + 1)}, '
                f'"weighted_possible": {wp}}}'
            )
        elif p < 0.85:
            name = "edx.grades.subsection.grade_calculated"
            event = self._subsection_grade(
                c, uid, tx, lambda: f"{self.ri(1, 29):02d} {self.ri(24):02d}:{self.ri(60):02d}:{self.ri(60):02d}.{self.ri(10**6):06d}"
            )
        else:
            name = "edx.grades.course.grade_calculated"
            event = self._course_grade(c, uid, tx, lambda: self.pick(("", "", "Pass")))
        ctx, org = self._problem_context(c, usage, dn, uid, asides=False)
        return RenderedEvent(self._server(name, ctx, u, sess, event, referer=self._page(c)[0]), org, uid, ip)

    def s_enrollment(self, u, sess, special):
        c = self._course(u)
        un, uid, ip, ag, al = self._user(u)
        name = self.pick(
            (
                "edx.course.enrollment.activated",
                "edx.course.enrollment.activated",
                "edx.course.enrollment.deactivated",
                "edx.course.enrollment.mode_changed",
            )
        )
        mode = self.pick(("audit", "audit", "verified", "honor", "professional"))
        event = f'{{"course_id": "{c.key}", "user_id": {uid}, "mode": "{mode}"}}'
        org_id, course_id, org = self._ctx_variant(c)
        path = self.pick(("/api/enrollment/v1/enrollment", "/change_enrollment", "/api/commerce/v0/baskets/"))
        ctx = (
            f'{{"course_id": "{course_id}", "org_id": "{org_id}", "user_id": {self._uid(uid)}, "path": "{path}", '
            f'"enterprise_uuid": "", "course_user_tags": {{}}}}'
        )
        return RenderedEvent(self._server(name, ctx, u, sess, event, referer=f"{LMS}/courses/{c.key}/about"), org, uid, ip)

    def s_forum(self, u, sess, special):
        c = self._course(u)
        un, uid, ip, ag, al = self._user(u)
        name = self.pick(
            (
                "edx.forum.thread.created",
                "edx.forum.response.created",
                "edx.forum.comment.created",
                "edx.forum.thread.viewed",
                "edx.forum.thread.voted",
                "edx.forum.searched",
            )
        )
        disc = self.pick(c.discussions)
        tid = self.hx(24)
        n = self.ri(1, 40)
        title = quote(self.pick(FORUM_TITLES).format(n=n))
        if special == 3:  # a foreign writer's Latin-1 / stray byte inside a string: invalid UTF-8
            title = title[:-1] + self.pick((" caf\udce9", " \udcff\udcfe", " na\udcefve")) + '"'
        body = "".join(self.pick(FORUM_TEXT) for _ in range(self.ri(1, 30)))
        truncated = len(body) > 2000
        body_q = quote(body[:2000])
        url = f"{LMS}/courses/{c.key}/discussion/forum/{disc}/threads/{tid}"
        common = (
            f'"commentable_id": "{disc}", "discussion": {{"id": "{tid}"}}, "team_id": null, "url": "{url}", '
            f'"user_forums_roles": ["Student"], "user_course_roles": [], "category_name": {title}, "category_id": "{disc}"'
        )
        if name == "edx.forum.thread.created":
            event = (
                f'{{"title": {title}, "body": {body_q}, "truncated": {str(truncated).lower()}, "thread_type": "discussion", '
                f'"group_id": null, "anonymous": false, "anonymous_to_peers": false, "options": {{"followed": true}}, '
                f'"id": "{tid}", "title_truncated": false, {common}}}'
            )
        elif name in ("edx.forum.response.created", "edx.forum.comment.created"):
            event = (
                f'{{"body": {body_q}, "truncated": {str(truncated).lower()}, "id": "{self.hx(24)}", '
                f'"options": {{"followed": false}}, "response": {{"id": "{self.hx(24)}"}}, {common}}}'
            )
        elif name == "edx.forum.searched":
            event = f'{{"query": {title}, "page": 1, "total_results": {self.ri(50)}, "corrected_text": null, "group_id": null}}'
        else:
            event = f'{{"id": "{tid}", "title": {title}, "title_truncated": false, {common}}}'
        org_id, course_id, org = self._ctx_variant(c)
        ctx = (
            f'{{"course_id": "{course_id}", "course_user_tags": {{}}, "user_id": {self._uid(uid)}, '
            f'"path": "/courses/{c.key}/discussion/{disc}/threads/create", "org_id": "{org_id}", "enterprise_uuid": ""}}'
        )
        return RenderedEvent(self._server(name, ctx, u, sess, event, referer=url), org, uid, ip)

    def s_misc(self, u, sess, special):
        rnd = self.rnd
        c = self._course(u)
        un, uid, ip, ag, al = self._user(u)
        h, usage, dn = self.pick(c.problems)
        if rnd.random() < 0.6:
            name, event = "showanswer", f'{{"problem_id": "{usage}"}}'
        else:
            name = "edx.problem.hint.demandhint_displayed"
            event = (
                f'{{"module_id": "{usage}", "hint_index": {self.ri(3)}, "hint_len": 3, '
                f'"hint_text": {json.dumps(self.pick(FORUM_TEXT).strip())}}}'
            )
        org_id, course_id, org = self._ctx_variant(c)
        ctx = (
            f'{{"course_id": "{course_id}", "course_user_tags": {{}}, "user_id": {self._uid(uid)}, '
            f'"path": "/courses/{c.key}/xblock/{usage}/handler/xmodule_handler/{name}", "org_id": "{org_id}", '
            f'"enterprise_uuid": "", "module": {{"display_name": {dn}, "usage_key": "{usage}"}}}}'
        )
        return RenderedEvent(self._server(name, ctx, u, sess, event, page='"x_module"', referer=self._page(c)[0]), org, uid, ip)

    def s_bi(self, u, sess, special):
        un, uid, ip, ag, al = self._user(u)
        name, path = self.pick(
            (
                ("edx.bi.user.account.registered", "/api/user/v2/account/registration/"),
                ("edx.bi.user.account.authenticated", "/login_ajax"),
                ("edx.bi.user.account.authenticated", "/login_ajax"),
            )
        )
        prov = self.pick(("null", "null", '"Google"', '"Facebook"'))
        label = self.pick(("null", '""'))
        event = f'{{"category": "conversion", "label": {label}, "provider": {prov}}}'
        ctx = f'{{"course_id": "", "org_id": "", "user_id": {uid}, "path": "{path}", "enterprise_uuid": ""}}'
        return RenderedEvent(self._server(name, ctx, u, sess, event, referer=f"{LMS}/login"), None, uid, ip)
