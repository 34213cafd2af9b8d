"""Pseudonymised research-package lines. No Beam here.

For an org whose package is pseudonymised, every line is re-serialised with:
- each username field (top-level `username`, `context.username`, `event.username`) replaced by
  a keyed pseudonym, `pu_` and 20 hex digits of HMAC-SHA256(key, org, "username", the username
  as logged after trimming);
- each user id (`context.user_id`, `event.user_id`, integers or strings of digits) replaced by a
  stable pseudonymous integer (48 bits of the same HMAC over "user_id" and the id);
- `ip` (top level and in the context) removed.
The org is part of every HMAC, so the same learner has different pseudonyms in different orgs'
packages and packages cannot be joined across orgs; the same key gives the same pseudonyms on
every day, file and rerun. A payload that is a JSON string (browser events) is rewritten inside
the string when it parses as an object. Empty usernames stay empty (logged-out users, workers).
"""

from __future__ import annotations

import hashlib
import hmac

import orjson

from trackpipe.events.parse import dump_json, load_json
from trackpipe.events.retirement import normal_user_id

USERNAME_PREFIX = "pu_"


class Pseudonymiser:
    """Pseudonyms for one org's package (build one per org; `line` is the hot path)."""

    def __init__(self, key: bytes, org: str):
        self._mac = hmac.new(key, org.encode("utf-8") + b"\x00", hashlib.sha256)
        self._names: dict[str, str] = {}
        self._ids: dict[str, int] = {}

    def _digest(self, kind: bytes, value: str) -> bytes:
        mac = self._mac.copy()
        mac.update(kind + b"\x00" + value.encode("utf-8", "surrogatepass"))
        return mac.digest()

    def username(self, value):
        if value.__class__ is not str or not value.strip():
            return value
        name = value.strip()
        found = self._names.get(name)
        if found is None:
            found = self._names[name] = USERNAME_PREFIX + self._digest(b"username", name).hex()[:20]
        return found

    def user_id(self, value):
        normal = normal_user_id(value)
        if normal is None:
            return value
        found = self._ids.get(normal)
        if found is None:
            found = self._ids[normal] = int.from_bytes(self._digest(b"user_id", normal)[:6], "big") + 1
        return found

    def _fields(self, obj: dict) -> None:
        if "username" in obj:
            obj["username"] = self.username(obj["username"])
        if "user_id" in obj:
            obj["user_id"] = self.user_id(obj["user_id"])

    def line(self, raw: bytes) -> bytes:
        """One package line (an event's JSON object as logged) pseudonymised and re-serialised."""
        obj = load_json(raw)
        if "username" in obj:
            obj["username"] = self.username(obj["username"])
        obj.pop("ip", None)
        context = obj.get("context")
        if context.__class__ is dict:
            self._fields(context)
            context.pop("ip", None)
        payload = obj.get("event")
        if payload.__class__ is dict:
            self._fields(payload)
        elif payload.__class__ is str and payload[:1] == "{":
            try:
                inner = orjson.loads(payload)
            except orjson.JSONDecodeError:
                inner = None
            if inner.__class__ is dict and ("username" in inner or "user_id" in inner):
                self._fields(inner)
                obj["event"] = orjson.dumps(inner).decode()
        return dump_json(obj)
