"""Errors trackpipe reports to users as one line (no traceback)."""


class TrackpipeError(Exception):
    """An expected failure with a message meant for the user (bad input, bad config, ...)."""


class ConfigError(TrackpipeError):
    """The YAML configuration is invalid; the message names the key."""


class InputError(TrackpipeError):
    """An input file cannot be read completely; the message names the file."""


class LockedError(TrackpipeError):
    """Another run holds the output's lock."""


class UnsafePathError(TrackpipeError):
    """A path that would leave the folder it must stay in (a bug, or a value from data that
    slipped past the rules that make names safe); nothing is written there."""


def first_line(exc: BaseException, limit: int = 400) -> str:
    """The first line of an exception's message (or its class name), cut to `limit`: what a
    one-line error message quotes of a library's error."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else exc.__class__.__name__)[:limit]
