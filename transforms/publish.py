"""Publishing as the pipeline's last step: merge every step's statistics, then check and publish.

It runs inside the pipeline (not in the driver) so that it happens on every runner, including
Dataflow jobs launched from a template whose launcher does not wait. Every writing step feeds
the statistics it merges, so it runs after all of them. The logic is in trackpipe.storage.journal.
"""

from __future__ import annotations

import apache_beam as beam

from trackpipe.manifest import RunInfo
from trackpipe.storage.journal import publish
from trackpipe.storage.workdir import WorkDir
from transforms.stats import MergeStatsFn


class PublishFn(beam.DoFn):
    def __init__(self, workdir: WorkDir, info: RunInfo):
        self._workdir = workdir
        self._info = info

    def setup(self):
        self._workdir.activate()

    def process(self, stats: dict):
        manifest = publish(self._workdir, stats, self._info)
        yield manifest["run_id"]


class PublishRun(beam.PTransform):
    """Statistics of every step -> the published run (emits its run id)."""

    def __init__(self, workdir: WorkDir, info: RunInfo):
        super().__init__()
        self._workdir = workdir
        self._info = info

    def expand(self, stats):
        return (
            stats
            | "MergeStats" >> beam.CombineGlobally(MergeStatsFn())
            | "CheckAndPublish" >> beam.ParDo(PublishFn(self._workdir, self._info))
        )
