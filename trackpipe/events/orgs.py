"""Course keys and orgs of an event. No Beam here.

The org of an event is `context.org_id`; if empty, the org of `context.course_id`; if empty, the
org of a course key found in the browser `page` URL or in the URL path that implicit server
events carry as `event_type`. Course keys come as `course-v1:Org+Course+Run` and the older
`Org/Course/Run`.

An org is learner-controlled text (browser events take it from the page URL the browser sent),
so it never becomes a file or folder name as it is: `package_name` gives its safe form, or None
when it has none, and such an org gets no research package.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

# New-style keys; block-v1/asset-v1 usage keys carry the same org+course+run.
_V1_KEY = re.compile(r"\b(?:course|ccx|block|asset)-v1:([\w.\-~]+)\+([\w.\-~]+)\+([\w.\-~]+)")
# Old-style keys in URL paths: /courses/Org/Course/Run/...
_OLD_PATH = re.compile(r"/courses/([\w.\-~]+)/([\w.\-~]+)/([\w.\-~]+)")
_ORG = re.compile(r"^[\w.\-~]+$")
# The safe form of an org: edX org names are ASCII letters, digits, `_`, `-`, `.` and `~`. The
# first character is a letter or digit (no hidden `.x`, reserved `_x`, option-like `-x` or `~x`
# names), `..` never appears, and the length is bounded so every file name built from it fits.
MAX_ORG_CHARS = 64
_SAFE_ORG = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.~\-]{{0,{MAX_ORG_CHARS - 1}}}")


def package_name(org) -> str | None:
    """The folder and file-name form of an org: ASCII lower case (`MITx` -> `mitx`), or None
    when the org has no safe form (`../x`, `a/b`, `.hidden`, `_tmp`, `MİTx`, NUL or newline,
    longer than MAX_ORG_CHARS). Matching is ASCII-only on purpose: Unicode case mapping turns
    `K` (Kelvin sign) into `k` and `İ` into two characters."""
    if org.__class__ is not str or not _SAFE_ORG.fullmatch(org) or ".." in org:
        return None
    return org.lower()


def org_of_course_id(course_id: str | None) -> str | None:
    """`course-v1:MITx+6.002x+2T2024` or `MITx/6.002x/2012_Fall` -> `MITx`; anything else -> None."""
    if not course_id or not isinstance(course_id, str):
        return None
    match = _V1_KEY.search(course_id)
    if match:
        return match.group(1)
    parts = course_id.split("/")
    if len(parts) == 3 and all(parts) and _ORG.match(parts[0]):
        return parts[0]
    return None


def course_key_in_url(url: str | None) -> str | None:
    """The course key a page URL or a request path refers to, normalised, or None.

    `https://courses.edx.org/courses/course-v1:MITx+6.002x+2T2024/courseware/...`
    -> `course-v1:MITx+6.002x+2T2024`; `/courses/MITx/6.002x/2012_Fall/info` -> `MITx/6.002x/2012_Fall`.
    """
    if not url or not isinstance(url, str):
        return None
    if "%" in url:
        url = unquote(url)
    match = _V1_KEY.search(url)
    if match:
        org, course, run = match.groups()
        return f"course-v1:{org}+{course}+{run}"
    match = _OLD_PATH.search(url)
    if match and not match.group(1).endswith("-v1:"):
        return "/".join(match.groups())
    return None


def resolve_course_and_org(context_course_id, context_org_id, page, event_type):
    """Return (course_id, org) following the rules in the module docstring.

    course_id is `context.course_id` when set, else the course key found in the URLs (so that
    implicit request events and browser events outside a course context still name their course).
    """
    course_id = context_course_id if isinstance(context_course_id, str) and context_course_id else None
    url_course = None
    if course_id is None:
        url_course = course_key_in_url(page) or course_key_in_url(event_type)
        course_id = url_course
    if isinstance(context_org_id, str) and context_org_id:
        return course_id, context_org_id
    return course_id, org_of_course_id(course_id)
