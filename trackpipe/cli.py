"""The `trackpipe` command: run, load, generate, report.

Exit status 0 on success; otherwise non-zero with a one-line reason on stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from trackpipe import __version__

COMMANDS = {
    "run": "Run the main job: raw tracking logs -> warehouse partitions, duplicates audit, rejects, research packages.",
    "load": "Load a run's partitions into a warehouse (DuckDB, PostgreSQL), or emit Vertica SQL.",
    "generate": "Generate realistic, deliberately faulty raw tracking logs and their expected counts.",
    "report": "Write a self-contained HTML data-quality report of a run's output.",
}


def quiet_beam_logging() -> None:
    """Beam logs import-time warnings (e.g. about optional GCP clients) at WARNING on the root
    logger; keep the console for trackpipe's own messages."""
    debug = bool(os.environ.get("TRACKPIPE_DEBUG"))
    logging.getLogger().setLevel(logging.INFO if debug else logging.ERROR)
    # Beam logs a failing bundle's traceback at ERROR; trackpipe prints one line instead
    # (TRACKPIPE_DEBUG=1 shows everything).
    logging.getLogger("apache_beam").setLevel(logging.INFO if debug else logging.CRITICAL)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("trackpipe: %(message)s"))
    ours = logging.getLogger("trackpipe")
    if not ours.handlers:
        ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    ours.propagate = False
    # On Dataflow, keep the lines that give the job id and the console link (schedulers such as
    # Airflow's Beam operator read them).
    dataflow = logging.getLogger("apache_beam.runners.dataflow")
    dataflow.setLevel(logging.INFO)
    if not dataflow.handlers:
        dataflow.addHandler(logging.StreamHandler(sys.stderr))


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
        from pipelines.tracking_logs import build
        from trackpipe.driver import run

        return run(rest, build)
    if command == "load":
        from trackpipe.warehouse import main as load_main

        return load_main(rest)
    if command == "generate":
        return _generate(rest)
    if command == "report":
        from trackpipe.report import main as report_main

        return report_main(rest)
    return 2


def _generate(argv: list[str]) -> int:
    from trackpipe.generate import add_arguments, generate

    parser = argparse.ArgumentParser(prog="trackpipe generate", description=COMMANDS["generate"])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        expected = generate(args.out, args.events, args.seed, days=args.days, files=args.files, start_date=args.start_date)
    except (FileExistsError, ValueError) as exc:
        print(f"trackpipe: error: {exc}", file=sys.stderr)
        return 1
    print(
        f"wrote {len(expected['files'])} files, {expected['lines_read']:,} lines to {args.out}; expected counts in {args.out}/expected.json"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
