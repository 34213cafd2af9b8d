# ruff: noqa: E402 - Beam is imported after its logging is quieted (see below)
"""The main job: raw tracking logs -> warehouse partitions, duplicates audit, rejects, research
packages and the run manifest.

    python -m pipelines.tracking_logs --input 'logs/**/tracking.log*' --output out/ [--runner ...]

takes the same flags as `trackpipe run`. `build` reads like the recipe it is; each step is a
composite transform that tests use directly.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":  # quiet Beam's import-time warnings before Beam is imported
    from trackpipe.console import quiet_beam_logging

    quiet_beam_logging()

import apache_beam as beam

from pipelines.options import parse_run_args
from trackpipe.driver import Job
from transforms.dedupe import DeduplicateEvents
from transforms.package import BuildResearchPackages
from transforms.publish import PublishRun
from transforms.read import FINGERPRINTS, RANGE_LINES, REJECTS, STATS, ListInputFiles, ReadAndStage
from transforms.write import PACKAGE_FRAGMENTS, WritePartitions, WriteRejectsFn


def build(p: beam.Pipeline, job: Job) -> None:
    config, workdir = job.config, job.workdir
    files = p | "ListInputs" >> ListInputFiles(list(job.inputs), workdir)
    staged = files | "ReadAndStage" >> ReadAndStage(config, workdir, job.shards, job.skip_corrupt, job.retired, keep_raw=job.packages)
    decisions = staged[FINGERPRINTS] | "Deduplicate" >> DeduplicateEvents(config.dedup.window_seconds)
    written = {
        "chunks": staged["chunks"],
        "decisions": decisions,
        "range_lines": staged[RANGE_LINES],
    } | "WritePartitions" >> WritePartitions(config, workdir, job.days, job.packages, job.cutoffs)
    range_lines = beam.pvalue.AsDict(staged[RANGE_LINES])
    stats = [
        staged[STATS],
        written.stats,
        staged[REJECTS] | "WriteRejects" >> beam.ParDo(WriteRejectsFn(workdir), range_lines=range_lines),
    ]
    if job.packages:
        stats.append(
            written[PACKAGE_FRAGMENTS]
            | "BuildResearchPackages" >> BuildResearchPackages(config.site, workdir, job.keys, config, job.pseudonym_key)
        )
    _ = stats | "AllStats" >> beam.Flatten() | "Publish" >> PublishRun(workdir, job.info)


def run(argv: list[str] | None = None, prog: str = "python -m pipelines.tracking_logs") -> int:
    """Parse the options and run the job (checks, lock, pipeline, publish, summary). Returns
    the exit status."""
    from trackpipe.console import quiet_beam_logging
    from trackpipe.driver import launch

    quiet_beam_logging()
    opts, beam_flags = parse_run_args(sys.argv[1:] if argv is None else argv, prog)
    return launch(opts, beam_flags, build)


if __name__ == "__main__":
    sys.exit(run())
