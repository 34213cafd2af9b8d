"""Retired learners: whether an event belongs to one. No Beam here.

When a learner is retired (Open edX's retirement pipeline, GDPR and similar laws), every event of
theirs must disappear. An event belongs to a retired learner when its top-level `username`,
`context.username` or `event.username` equals a retired username (as logged, after trimming
surrounding whitespace), or its `context.user_id` or `event.user_id` equals a retired user id (an
integer, or a string of digits). A payload that is a JSON string (browser events) is looked into
when it parses as an object.

The list travels to workers as salted 64-bit digests, never as clear usernames: a pipeline's
options and its serialised steps end up in job graphs and logs on some runners.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import orjson
import xxhash


def _digest(salt: bytes, kind: bytes, value: str) -> int:
    return xxhash.xxh3_64_intdigest(salt + kind + value.encode("utf-8", "surrogatepass"))


def normal_user_id(value) -> str | None:
    """A user id as compared: an int, or a string of ASCII digits, as its decimal text."""
    if value.__class__ is int:
        return str(value)
    if value.__class__ is str:
        text = value.strip()
        if text.isascii() and text.isdigit():
            return str(int(text))
    return None


@dataclass(frozen=True)
class RetiredUsers:
    """Salted digests of retired usernames and user ids; empty: nobody is retired."""

    usernames: frozenset[int] = frozenset()
    user_ids: frozenset[int] = frozenset()
    salt: bytes = field(default_factory=lambda: os.urandom(16))

    @classmethod
    def of(cls, usernames, user_ids) -> RetiredUsers:
        salt = os.urandom(16)
        names = frozenset(_digest(salt, b"u", name.strip()) for name in usernames if name and name.strip())
        ids = frozenset(_digest(salt, b"i", uid) for uid in (normal_user_id(v) for v in user_ids) if uid is not None)
        return cls(names, ids, salt)

    def __bool__(self) -> bool:
        return bool(self.usernames or self.user_ids)

    def __len__(self) -> int:
        return len(self.usernames) + len(self.user_ids)

    def username(self, value) -> bool:
        return value.__class__ is str and _digest(self.salt, b"u", value.strip()) in self.usernames

    def user_id(self, value) -> bool:
        normal = normal_user_id(value)
        return normal is not None and _digest(self.salt, b"i", normal) in self.user_ids

    def matches(self, username, context, payload) -> bool:
        """Whether an event (its top-level username, its context and its payload as parsed)
        belongs to a retired learner."""
        if self.username(username):
            return True
        if context.__class__ is dict and (self.username(context.get("username")) or self.user_id(context.get("user_id"))):
            return True
        if payload.__class__ is str and payload[:1] == "{":
            try:
                payload = orjson.loads(payload)
            except orjson.JSONDecodeError:
                return False
        if payload.__class__ is dict:
            return self.username(payload.get("username")) or self.user_id(payload.get("user_id"))
        return False
