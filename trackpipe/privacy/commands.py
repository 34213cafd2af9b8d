"""The `trackpipe forget` and `trackpipe expire` command lines (docs/privacy.md)."""

from __future__ import annotations

import argparse

from trackpipe.console import run_command
from trackpipe.errors import ConfigError
from trackpipe.storage.object_stores import add_arguments as add_store_arguments

FORGET = "Retire learners from everything an output has published (and from named warehouses)."
EXPIRE = "Remove the days, packages and run records older than the retention config."


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 1, like every other trackpipe failure
        raise ConfigError(f"{message} (see {self.prog} --help)")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", metavar="OUT", required=True, help="The trackpipe output folder (local, s3:// or gs://).")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="YAML config, as for `trackpipe run` (default: the config the latest run recorded in OUT/_manifest.json).",
    )
    parser.add_argument(
        "--warehouse",
        metavar="URL",
        action="append",
        default=[],
        help="A warehouse loaded from this output to change too: duckdb:///path/file.duckdb or "
        "postgresql://user:password@host:port/db (repeatable).",
    )
    parser.add_argument("--dry-run", action="store_true", help="Print what would change and change nothing.")
    add_store_arguments(parser)


def forget_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="trackpipe forget",
        description=FORGET + "\nRemoves every event of the listed learners from the warehouse partitions (both streams), the\n"
        "duplicates audit, the rejects, the research packages (written again, encrypted again to the same recipients),\n"
        "OUT/report.html (written again) and the named warehouses. Each file is replaced through a journal that the next\n"
        "command finishes if this one is killed; a record OUT/_retirements/<id>.json keeps the counts and the learners\n"
        "as salted hashes.",
        epilog="Examples:\n"
        "  trackpipe forget --output out --users retired.csv --dry-run\n"
        "  trackpipe forget --output out --users retired.csv --warehouse duckdb:///data/warehouse.duckdb\n"
        "See docs/privacy.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument(
        "--users",
        metavar="CSV",
        required=True,
        help="The retired learners: a CSV with the header `username,user_id` (either may be empty on a line).",
    )
    _common(parser)
    return parser


def expire_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="trackpipe expire",
        description=EXPIRE + "\nWith `retention.<kind>_days: N` (today included), removes older warehouse partitions,\n"
        "duplicates-audit days, research packages (with their MANIFEST) and run records (by the day the run started),\n"
        "and the same warehouse days from the named warehouses. Appends one line to OUT/_expirations.jsonl.",
        epilog="Example:\n  trackpipe expire --output out --config trackpipe.yaml --warehouse duckdb:///data/warehouse.duckdb\nSee docs/privacy.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--today", metavar="YYYY-MM-DD", help="The day counted as today (default: the UTC date).")
    _common(parser)
    return parser


def _main(parser_of, action, argv: list[str]) -> int:
    def work() -> str:
        args = parser_of().parse_args(argv)
        from trackpipe import storage
        from trackpipe.storage.object_stores import configure_from_args

        configure_from_args(args)
        storage.check_buckets([args.output])
        return action(args)

    return run_command(work)


def forget_main(argv: list[str]) -> int:
    from trackpipe.privacy.forget import forget

    return _main(forget_parser, lambda a: forget(a.output, a.users, a.config, a.warehouse, a.dry_run), argv)


def expire_main(argv: list[str]) -> int:
    from trackpipe.privacy.expire import expire

    return _main(expire_parser, lambda a: expire(a.output, a.config, a.today, a.warehouse, a.dry_run), argv)
