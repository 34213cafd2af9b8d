"""The `trackpipe` command: run, load, generate, report, forget, expire.

Exit status 0 on success; otherwise non-zero with a one-line reason on stderr.
"""

from __future__ import annotations

import argparse
import sys

from trackpipe import __version__
from trackpipe.console import quiet_beam_logging

COMMANDS = {
    "run": "Run the main job: raw tracking logs -> warehouse partitions, duplicates audit, rejects, research packages.",
    "load": "Load a run's partitions into a warehouse (DuckDB, PostgreSQL), or emit Vertica SQL.",
    "generate": "Generate realistic, deliberately faulty raw tracking logs and their expected counts.",
    "report": "Write a self-contained HTML data-quality report of a run's output.",
    "forget": "Retire learners from everything an output has published (and from named warehouses).",
    "expire": "Remove the days, packages and run records older than the retention config.",
}


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trackpipe",
        description="Open edX tracking logs -> clean, deduplicated warehouse data and research data packages.",
        epilog="Commands:\n"
        + "\n".join(f"  {name:<10} {text}" for name, text in COMMANDS.items())
        + "\n\n`trackpipe <command> --help` documents each command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"trackpipe {__version__}")
    parser.add_argument("command", nargs="?", choices=sorted(COMMANDS), metavar="command", help="one of: " + ", ".join(COMMANDS))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    quiet_beam_logging()
    parser = _top_parser()
    if not argv or argv[0] in ("-h", "--help", "--version"):
        parser.parse_args(argv)
        parser.print_help()
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        parser.error(f"unknown command {command!r} (choose from {', '.join(COMMANDS)})")
    if command == "run":
        from pipelines.tracking_logs import run

        return run(rest, prog="trackpipe run")
    if command == "load":
        from trackpipe.warehouse.load_command import main as load_main

        return load_main(rest)
    if command == "generate":
        return _generate(rest)
    if command == "report":
        from trackpipe.report.render import main as report_main

        return report_main(rest)
    if command == "forget":
        from trackpipe.privacy.commands import forget_main

        return forget_main(rest)
    if command == "expire":
        from trackpipe.privacy.commands import expire_main

        return expire_main(rest)
    return 2


def _generate(argv: list[str]) -> int:
    from trackpipe.generator.generate import add_arguments, generate

    parser = argparse.ArgumentParser(prog="trackpipe generate", description=COMMANDS["generate"])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        expected = generate(
            args.out, args.events, args.seed, days=args.days, files=args.files, start_date=args.start_date, shape=args.shape
        )
    except (FileExistsError, ValueError) as exc:
        print(f"trackpipe: error: {exc}", file=sys.stderr)
        return 1
    print(
        f"wrote {len(expected['files'])} files, {expected['lines_read']:,} lines to {args.out}; expected counts in {args.out}/expected.json"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
