"""The retired-users list: a CSV with the header `username,user_id` (Open edX's retirement
exports give both; either may be empty on a line)."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import os
from dataclasses import dataclass

from trackpipe import storage
from trackpipe.errors import ConfigError, TrackpipeError
from trackpipe.events.retirement import RetiredUsers, normal_user_id


def read_retired(path: str) -> tuple[list[str], list[str]]:
    """(usernames, user ids) of a retired-users CSV; a bad file stops with one line naming it."""
    try:
        text = storage.read_bytes(path).decode("utf-8-sig")
    except (OSError, TrackpipeError) as exc:
        raise ConfigError(f"cannot read the retired-users list {path}: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"the retired-users list {path} is not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or [f.strip() for f in reader.fieldnames][:2] != ["username", "user_id"]:
        raise ConfigError(f"the retired-users list {path} must start with the header 'username,user_id', got {reader.fieldnames!r}")
    usernames, user_ids = [], []
    for number, row in enumerate(reader, 2):
        name = (row.get("username") or "").strip()
        uid = (row.get("user_id") or "").strip()
        if uid and normal_user_id(uid) is None:
            raise ConfigError(f"{path}, line {number}: user_id must be a whole number, got {uid!r}")
        if name:
            usernames.append(name)
        if uid:
            user_ids.append(uid)
    return usernames, user_ids


def load_retired(path: str | None) -> RetiredUsers:
    """The salted list a run drops at parse time (empty without a file)."""
    if not path:
        return RetiredUsers()
    return RetiredUsers.of(*read_retired(path))


@dataclass(frozen=True)
class RetiredList:
    """The retired learners in clear, for `trackpipe forget` only: held in memory while it runs,
    never written (the retirement record keeps salted hashes, `salted_hashes`)."""

    usernames: tuple[str, ...] = ()  # trimmed, unique, sorted
    user_ids: tuple[str, ...] = ()  # decimal text (normal_user_id), unique, sorted

    @classmethod
    def of(cls, usernames, user_ids) -> RetiredList:
        names = sorted({n.strip() for n in usernames if n and n.strip()})
        ids = sorted({i for i in (normal_user_id(v) for v in user_ids) if i is not None}, key=lambda t: (len(t), t))
        return cls(tuple(names), tuple(ids))

    def __bool__(self) -> bool:
        return bool(self.usernames or self.user_ids)

    def rule(self) -> RetiredUsers:
        """The matching rule (trackpipe.events.retirement) for events as logged."""
        return RetiredUsers.of(self.usernames, self.user_ids)

    def pseudonymised(self, pseudonymiser) -> RetiredList:
        """The same learners as they appear in a pseudonymised research package (the org's
        pseudonyms, trackpipe.events.pseudonyms.Pseudonymiser)."""
        return RetiredList.of([pseudonymiser.username(n) for n in self.usernames], [str(pseudonymiser.user_id(i)) for i in self.user_ids])

    def salted_hashes(self) -> dict:
        """The learners as salted hashes, for the retirement record: anyone holding a username or
        id can check whether it was in the list; nobody can read the list back."""
        salt = os.urandom(16)

        def digest(kind: str, value: str) -> str:
            return hmac.new(salt, f"{kind}:{value}".encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()

        return {
            "algorithm": "HMAC-SHA256(key=salt, message='username:<name>' or 'user_id:<decimal id>')",
            "salt": salt.hex(),
            "usernames": sorted(digest("username", n) for n in self.usernames),
            "user_ids": sorted(digest("user_id", i) for i in self.user_ids),
        }


def read_list(path: str) -> RetiredList:
    """The retired-users CSV as a RetiredList (a bad file stops with one line naming it)."""
    return RetiredList.of(*read_retired(path))
