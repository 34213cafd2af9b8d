"""Command-line options of the tracking-logs job, shared by `trackpipe run` and
`python -m pipelines.tracking_logs`, plus the check that every other flag is a Beam option.

Runner and path flags live here; domain settings live in the YAML config (trackpipe.config).
"""

from __future__ import annotations

import argparse

from apache_beam.options.pipeline_options import PipelineOptions


def _switch(value: str) -> bool:
    """`--flag` alone is true; `--flag=true/false` also works (Flex Templates pass every
    parameter as --name=value)."""
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _add_switch(parser, name: str, help: str) -> None:
    parser.add_argument(name, nargs="?", const=True, default=False, type=_switch, metavar="true|false", help=help)


def add_run_arguments(parser, beam_parser: bool = False) -> None:
    """The job's own flags. Beam's parser gets no `required`: workers rebuild options without them."""
    parser.add_argument(
        "--input",
        action="append",
        metavar="GLOB",
        required=not beam_parser,
        help="Tracking log files: a path or glob (`*`, `**` across folders), local, s3:// or gs://. "
        "Repeat for several globs. .gz files (by suffix or magic bytes) are decompressed.",
    )
    parser.add_argument("--output", metavar="DIR", required=not beam_parser, help="Output folder (local, s3:// or gs://).")
    parser.add_argument("--config", metavar="FILE", help="YAML config (default: built-in defaults, see configs/default.yaml).")
    parser.add_argument("--site", metavar="NAME", help="Short site name used in research package names (default: config `site`, edx).")
    parser.add_argument("--format", choices=["parquet", "avro"], help="Warehouse file format (default: config `format`, parquet).")
    parser.add_argument("--date", metavar="YYYY-MM-DD", help="Write only this day's partitions (all input is still read).")
    parser.add_argument("--start-date", metavar="YYYY-MM-DD", help="First day to write (with --end-date).")
    parser.add_argument("--end-date", metavar="YYYY-MM-DD", help="Last day to write, inclusive (with --start-date).")
    _add_switch(
        parser,
        "--skip-corrupt-inputs",
        help="Go on when an input file is truncated, corrupt, unreadable or gone: use the lines before "
        "the damage and list the file under input_errors in the manifest. Default: fail the run.",
    )
    parser.add_argument(
        "--max-reject-ratio",
        type=float,
        metavar="R",
        help="Fail without publishing when more than this share of non-blank lines is rejected (default: config `max_reject_ratio`, 0.05).",
    )
    _add_switch(parser, "--no-package", help="Do not build research data packages.")
    parser.add_argument(
        "--load",
        metavar="URL",
        help="After a successful run, load its days into a warehouse: duckdb:///path.duckdb or postgresql://user:password@host:port/db.",
    )
    parser.add_argument(
        "--dedup-shards",
        type=int,
        default=32,
        metavar="N",
        help="Shards of the deduplication shuffle (parallelism of that step; no effect on results). Default 32.",
    )
    parser.add_argument(
        "--scratch-dir",
        metavar="DIR",
        help="Where intermediate data goes (staged chunks: about 2.5x the raw log size while the run lasts). "
        "Default: inside OUT/_tmp, or a local temporary folder when OUT is in an object store and the runner "
        "works on this machine. Must be reachable by every worker.",
    )
    _add_switch(parser, "--quiet", help="No progress or summary on stderr/stdout; errors only.")


class TrackpipeOptions(PipelineOptions):
    """The job's flags as a Beam options view (`options.view_as(TrackpipeOptions)`)."""

    @classmethod
    def _add_argparse_args(cls, parser):
        add_run_arguments(parser, beam_parser=True)


def parse_run_args(argv: list[str], prog: str) -> tuple[argparse.Namespace, list[str]]:
    """The job's options and the Beam flags that follow them; an unknown flag is an error."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Read raw Open edX tracking logs, parse, deduplicate, split research / internal BI events, "
        "write warehouse partitions and research packages. Any Beam pipeline option may follow "
        "(--runner, --direct_num_workers, --direct_running_mode, --s3_endpoint_url, ...).",
        allow_abbrev=False,
    )
    add_run_arguments(parser)
    opts, beam_flags = parser.parse_known_args(argv)
    unknown = unknown_beam_flags(beam_flags)
    if unknown:
        parser.error(f"unknown option {unknown[0]} (not a trackpipe or Beam pipeline option)")
    return opts, beam_flags


def _all_option_classes():
    seen, todo = [], [PipelineOptions]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.append(sub)
                todo.append(sub)
    return seen


def unknown_beam_flags(args: list[str]) -> list[str]:
    """The flags in `args` that no Beam options class knows (typos must not be ignored silently,
    which is what Beam itself does with a warning)."""
    # Importing the runners registers their option classes (Dataflow, portable, ...).
    import apache_beam.options.pipeline_options  # noqa: F401

    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False, conflict_handler="resolve")
    for cls in _all_option_classes():
        if cls is not TrackpipeOptions:
            cls._add_argparse_args(parser)
    _known, unknown = parser.parse_known_args(args)
    return [a for a in unknown if a.startswith("--")]
