"""Finding the rows, lines and package events of retired learners in what was published. No I/O.

The rule is trackpipe.events.retirement's (top-level `username`, `context.username`,
`event.username` after trimming; `context.user_id`, `event.user_id` as integers or strings of
digits). Each output holds an event differently, so each has its matcher:

- warehouse rows (`RowMatcher`): the `username` and `user_id` columns, and the JSON text columns
  `context` and `event`. A vectorised pre-filter (the username or user id in a column, or any
  spelling of a retired username or the digits of a retired id anywhere in `context`/`event`)
  picks candidates; the rule, applied to each candidate's parsed `context` and `event`, decides.
- research-package lines and other JSON events (`LineMatcher`): the same pre-filter on the raw
  bytes, then the rule on the parsed line.
- rejected lines (`RejectMatcher`): a rejected line is not an event, so it is matched as text,
  see `RejectMatcher`.

Spellings of a username: as it is (UTF-8), JSON-escaped with UTF-8 kept (orjson), and
JSON-escaped to ASCII with lower- and upper-case `\\uXXXX` (Python's json, edX's logger).
"""

from __future__ import annotations

import json
import re

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from trackpipe.events.parse import load_json
from trackpipe.privacy.retired_users import RetiredList

# Up to this many needles are searched one by one; more go into one RE2 alternation.
SUBSTRING_NEEDLES = 8
INT64_MAX = 2**63 - 1


def spellings(name: str) -> list[str]:
    """The ways a username can appear inside JSON text (see the module docstring)."""
    found = [name, orjson.dumps(name).decode()[1:-1]]
    ascii_form = json.dumps(name)[1:-1]
    found += [ascii_form, re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m.group(1).upper(), ascii_form)]
    return list(dict.fromkeys(found))


def needles(retired: RetiredList) -> list[str]:
    """Every substring whose absence proves a text holds no retired learner."""
    found = [s for name in retired.usernames for s in spellings(name)]
    return list(dict.fromkeys(found + list(retired.user_ids)))


def _re2_literal(text: str) -> str:
    return "\\Q" + "\\E\\\\E\\Q".join(text.split("\\E")) + "\\E"


def _contains_any(column: pa.Array, words: list[str]) -> np.ndarray:
    if not words or len(column) == 0:
        return np.zeros(len(column), dtype=bool)
    if len(words) <= SUBSTRING_NEEDLES:
        hits = np.zeros(len(column), dtype=bool)
        for word in words:
            hits |= pc.fill_null(pc.match_substring(column, word), False).to_numpy(zero_copy_only=False)
        return hits
    pattern = "|".join(_re2_literal(w) for w in words)
    return pc.fill_null(pc.match_substring_regex(column, pattern), False).to_numpy(zero_copy_only=False)


def _parsed(text):
    if text.__class__ is not str or text[:1] != "{":
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        try:
            return load_json(text.encode("utf-8", "surrogatepass"))
        except (ValueError, RecursionError):
            return None


class RowMatcher:
    """Which rows of a warehouse table (Arrow columns username, user_id, context, event) belong
    to retired learners."""

    COLUMNS = ("username", "user_id", "context", "event")

    def __init__(self, retired: RetiredList):
        self._rule = retired.rule()
        self._names = pa.array(list(retired.usernames), pa.string())
        self._ids = pa.array([int(i) for i in retired.user_ids if int(i) <= INT64_MAX], pa.int64())
        self._needles = needles(retired)

    def candidates(self, table) -> np.ndarray:
        """Row numbers the pre-filter lets through (a superset of the matches)."""
        n = table.num_rows
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        hits = pc.fill_null(pc.is_in(table.column("username"), value_set=self._names), False).to_numpy(zero_copy_only=False)
        hits = hits | pc.fill_null(pc.is_in(table.column("user_id"), value_set=self._ids), False).to_numpy(zero_copy_only=False)
        for name in ("context", "event"):
            hits = hits | _contains_any(_plain(table.column(name)), self._needles)
        return np.flatnonzero(hits)

    def rows(self, table) -> np.ndarray:
        """A boolean mask: True for the rows of retired learners."""
        mask = np.zeros(table.num_rows, dtype=bool)
        picked = self.candidates(table)
        if len(picked) == 0:
            return mask
        sub = table.select(list(self.COLUMNS)).take(pa.array(picked))
        values = zip(*(sub.column(c).to_pylist() for c in self.COLUMNS))
        for index, (username, user_id, context, event) in zip(picked, values):
            mask[index] = self.row(username, user_id, context, event)
        return mask

    def row(self, username, user_id, context, event) -> bool:
        """The rule on one row's values (context and event as stored: JSON text)."""
        return self._rule.user_id(user_id) or self._rule.matches(username, _parsed(context), event)


def _plain(column):
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return column.dictionary_decode() if pa.types.is_dictionary(column.type) else column


class LineMatcher:
    """Whether a JSON event line (a research-package line: the event as logged, or pseudonymised)
    belongs to a retired learner."""

    def __init__(self, retired: RetiredList):
        self._rule = retired.rule()
        words = [w.encode("utf-8", "surrogatepass") for w in needles(retired)]
        self._prefilter = re.compile(b"|".join(re.escape(w) for w in words)) if words else None

    def matches(self, line: bytes) -> bool:
        if self._prefilter is None or self._prefilter.search(line) is None:
            return False
        try:
            obj = load_json(line)
        except (ValueError, RecursionError):
            return False
        return obj.__class__ is dict and self._rule.matches(obj.get("username"), obj.get("context"), obj.get("event"))


class RejectMatcher:
    """Whether a rejected line (its `line` and `detail` texts) mentions a retired learner.

    A rejected line is removed when its text holds:
    - a retired username as a JSON string token: the name, in any of its spellings, between
      double quotes, with optional whitespace inside the quotes (`"alice"`, `" alice "`); the
      closing quote may be escaped (`\\"alice\\"`, a JSON string inside a JSON string) or missing
      at the very end of the text (a line cut right after the name);
    - a retired user id as `"user_id": <id>` or `"user_id": "<id>"`: any whitespace around the
      colon and inside the quotes, optional leading zeros, quotes optionally escaped
      (`\\"user_id\\": 42`), and no further digit after the id (42 does not match 421);
    - or, when the line holds a JSON object (from its first `{` to its last `}`), an event the
      retirement rule matches (e.g. a username logged with surrounding spaces).
    """

    def __init__(self, retired: RetiredList):
        self._rule = retired.rule()
        parts = []
        for name in retired.usernames:
            for form in spellings(name):
                parts.append('"' + r"\s*" + re.escape(form) + r'\s*(?:\\*"|\Z)')
        for uid in retired.user_ids:
            parts.append(r'\\*"user_id\\*"\s*:\s*(?:\\*"\s*)?0*' + re.escape(uid) + r"(?![0-9])")
        self._pattern = re.compile("|".join(parts)) if parts else None

    def matches(self, line, detail="") -> bool:
        if self._pattern is None:
            return False
        texts = [t for t in (line, detail) if isinstance(t, str)]
        if any(self._pattern.search(t) for t in texts):
            return True
        if isinstance(line, str):
            start, end = line.find("{"), line.rfind("}")
            if 0 <= start < end:
                try:
                    obj = load_json(line[start : end + 1].encode("utf-8", "surrogatepass"))
                except (ValueError, RecursionError):
                    return False
                return obj.__class__ is dict and self._rule.matches(obj.get("username"), obj.get("context"), obj.get("event"))
        return False
