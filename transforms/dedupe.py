"""Deduplication as a Beam composite: shard fingerprint batches by identity, decide per shard.

Input: (shard, (chunk key, fingerprint records as bytes)) from the reader. Output:
(chunk key, decisions as bytes) for every chunk that has removed copies or kept rows standing
for several lines; chunks with nothing to change get no decision at all. The rule itself is
plain Python in trackpipe.events.duplicates.
"""

from __future__ import annotations

import apache_beam as beam
import numpy as np

from trackpipe.events.duplicates import FP_DTYPE, decide


class DecideShardFn(beam.DoFn):
    def __init__(self, window_seconds: float):
        self._window_us = int(round(window_seconds * 1_000_000))

    def process(self, element):
        _shard, parts = element
        records = [(key, np.frombuffer(blob, dtype=FP_DTYPE)) for key, blob in parts]
        for key, decisions in sorted(decide(records, self._window_us).items()):
            yield key, decisions.tobytes()


class DeduplicateEvents(beam.PTransform):
    """Fingerprint batches keyed by shard -> decisions keyed by chunk."""

    def __init__(self, window_seconds: float):
        super().__init__()
        self._window_seconds = window_seconds

    def expand(self, fingerprints):
        return fingerprints | "GroupByShard" >> beam.GroupByKey() | "Decide" >> beam.ParDo(DecideShardFn(self._window_seconds))
