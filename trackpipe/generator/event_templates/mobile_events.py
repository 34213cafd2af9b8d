"""Templates of the events the mobile apps send through Segment (event_source "mobile"): video
player events (a JSON string from Android, an object from iOS) and the edx.bi.* app events.
Their context carries Segment's ``received_at``, and each user keeps the same phone.
"""

from __future__ import annotations

import json

from trackpipe.generator.event_templates.event_parts import EventProvider, RenderedEvent
from trackpipe.generator.vocabulary import SITE_HOST
from trackpipe.generator.world import Course


class MobileEvents(EventProvider):
    """The m_* families."""

    def _mobile(self, name, event_type, u, event, c: Course, component):
        un, uid, ip, ag, al = self._user(u)
        agent, app, client = self.w.mobile_client(u)
        org_id, course_id, org = self._ctx_variant(c)
        page, _ = self._page(c)
        ctx = (
            f'{{"component": "{component}", "received_at": "\x02", "course_id": "{course_id}", '
            f'"path": "/segment/event", "user_id": {uid}, "org_id": "{org_id}", "application": {app}, '
            f'"client": {client}}}'
        )
        ipv = '""' if self.rnd.random() < 0.7 else f'"{ip}"'
        return RenderedEvent(
            f'{{"username": "{un}", "event_source": "mobile", "name": "{name}", \x01, "agent": {agent}, '
            f'"page": "{page}", "host": "{SITE_HOST}", "session": "", "context": {ctx}, "ip": {ipv}, '
            f'"event": {event}, "event_type": "{event_type}"}}',
            org,
            uid,
            None,
        )

    def m_video(self, u, sess, special):
        rnd = self.rnd
        c = self._course(u)
        h, vid, usage, yt, dur = self.pick(c.videos)
        name, legacy = self.pick(
            (
                ("edx.video.played", "play_video"),
                ("edx.video.played", "play_video"),
                ("edx.video.paused", "pause_video"),
                ("edx.video.position.changed", "seek_video"),
                ("edx.video.loaded", "load_video"),
                ("edx.video.stopped", "stop_video"),
                ("edx.video.transcript.shown", "show_transcript"),
            )
        )
        ct = f"{rnd.random() * dur:.3f}"
        mid = usage
        if name == "edx.video.position.changed":
            body = (
                f'"code": "mobile", "id": "{vid}", "old_time": {ct}, "new_time": {self.ri(dur)}.0, '
                f'"type": "{self.pick(("onSkipSeek", "onSlideSeek"))}", "module_id": "{mid}"'
            )
        else:
            body = f'"code": "mobile", "id": "{vid}", "currentTime": {ct}, "module_id": "{mid}"'
        if self.w.mobile_client(u)[1].find("android") >= 0:
            event = json.dumps("{" + body + "}")  # the Android app: a JSON string
        else:
            event = "{" + body + "}"  # iOS: an object
        return self._mobile(name, legacy, u, event, c, "videoplayer")

    def m_bi(self, u, sess, special):
        c = self._course(u)
        name, label = self.pick(
            (
                ("edx.bi.app.navigation.screen", "Course Outline"),
                ("edx.bi.app.navigation.screen", "Course Dashboard"),
                ("edx.bi.app.navigation.screen", "Unit Detail"),
                ("edx.bi.app.videos.download.toggled", "Bulk Download"),
            )
        )
        event = (
            f'{{"category": "{"screen" if "screen" in name else "video"}", "label": "{label}", '
            f'"course_id": "{c.key}", "app_name": "{self.pick(("edx.mobileapp.android", "edx.mobileapp.iOS"))}", '
            f'"connection_type": "{self.pick(("wifi", "cellular"))}", "screen_position": {self.ri(10000)}}}'
        )
        return self._mobile(name, name, u, event, c, "navigation")
