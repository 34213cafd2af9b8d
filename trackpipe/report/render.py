"""`trackpipe report OUT [--compare OTHER_OUT] [--html FILE]`: one self-contained HTML page per run.

The page is made of inline SVG charts (no script, no web font, nothing fetched), so it opens
anywhere, offline. Its numbers come from trackpipe.report.data, which reads the run's outputs and
manifest only. Every chart element carries its numbers in `data-*` attributes (data-key,
data-value, data-prev) and as visible text, so the page can be checked against the manifest.

With --compare, each chart shows the other run's numbers beside this run's, with the change
(absolute and %); changes over 20% are highlighted and listed at the top.

Where things are: trackpipe.report.sections says what each part of the page shows,
trackpipe.report.charts lays the charts out, and the markup is in the Jinja2 templates of
trackpipe/report/templates/ (report.html.j2, sections.html.j2, charts.html.j2, report.css),
rendered with autoescaping: every value from the data is escaped.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import functools
import sys

import jinja2

from trackpipe import __version__, storage
from trackpipe.console import run_command
from trackpipe.errors import TrackpipeError
from trackpipe.report import data as rd
from trackpipe.report import sections
from trackpipe.report.changes import Compare
from trackpipe.report.charts import BIG_BACKGROUND, PREV_COLOR
from trackpipe.report.formatting import fmt_bytes, fmt_change, fmt_int
from trackpipe.storage.object_stores import add_arguments as add_store_arguments

__all__ = ["REPORT_NAME", "fmt_change", "main", "render", "write_report"]

REPORT_NAME = "report.html"
PAGE_TEMPLATE = "report.html.j2"


@functools.cache
def environment() -> jinja2.Environment:
    """The templates of trackpipe/report/templates (shipped as package data), autoescaped."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("trackpipe.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=fmt_int, size=fmt_bytes, px=lambda v: f"{v:.1f}")
    env.globals.update(
        PREV_COLOR=PREV_COLOR,
        BIG_BACKGROUND=BIG_BACKGROUND,
        BIG_CHANGE=f"{rd.BIG_CHANGE:.0%}",
        EXAMPLES_PER_REASON=rd.EXAMPLES_PER_REASON,
        EXAMPLE_CHARS=rd.EXAMPLE_CHARS,
        MASK=rd.MASK,
    )
    return env


def render(run: rd.RunData, other: rd.RunData | None = None) -> str:
    cmp = Compare.of(run, other)
    # The sections register their big changes on `cmp` as they are laid out, in page order; the
    # summary of those changes is drawn on top of the page.
    parts = {
        "header": sections.header(run, cmp),
        "reconciliation": sections.reconciliation(run, cmp),
        "hourly": sections.hourly(run, cmp),
        "rows": sections.rows(run, cmp),
        "duplicates": sections.duplicates(run, cmp),
        "rejects": sections.rejects(run, cmp),
        "packages": sections.packages(run, cmp),
        "storage": sections.storage(run, cmp),
        "inputs": sections.inputs(run),
    }
    page = environment().get_template(PAGE_TEMPLATE)
    return page.render(
        run=run,
        compared=cmp is not None,
        notes=sections.notes(run, cmp),
        changes=cmp.summary() if cmp is not None else None,
        version=__version__,
        generated=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **parts,
    )


def write_report(output: str, html_path: str | None = None, compare: str | None = None) -> str:
    """Write the HTML report of the run in `output` (default: OUTPUT/report.html); returns its path."""
    run = rd.gather(output)
    other = rd.gather(compare) if compare else None
    page = render(run, other)
    path = html_path or storage.join(output, REPORT_NAME)
    try:
        storage.write_atomic(path, page.encode("utf-8"))
    except OSError as exc:
        raise TrackpipeError(storage.disk_error_message(exc, path)) from None
    return path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trackpipe report",
        description="Write a self-contained HTML data-quality report of a run's output: rows per hour and event source, "
        "duplicates, rejects with masked examples, rows per stream and day, research packages and the reconciliation. "
        "Reads the manifest and the outputs only (local folder, s3:// or gs:// URL).",
    )
    parser.add_argument("output", metavar="OUT", help="the output folder of a finished `trackpipe run` (holds _manifest.json)")
    parser.add_argument("--compare", metavar="OTHER_OUT", help="another run's output folder to show beside this one, with the changes")
    parser.add_argument("--html", metavar="FILE", help=f"where to write the page (default: OUT/{REPORT_NAME})")
    add_store_arguments(parser)
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)

    def work() -> str:
        from trackpipe.storage.object_stores import configure_from_args

        configure_from_args(args)
        storage.check_buckets([args.output, args.compare, args.html])
        return write_report(args.output, args.html, args.compare)

    return run_command(work)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
