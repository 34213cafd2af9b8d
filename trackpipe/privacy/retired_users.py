"""The retired-users list: a CSV with the header `username,user_id` (Open edX's retirement
exports give both; either may be empty on a line)."""

from __future__ import annotations

import csv
import io

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
