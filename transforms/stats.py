"""Run statistics: small nested dicts of counts that every step emits and one combiner merges.

The run manifest is built from the merged statistics, which flow through the pipeline like any
other data, so it is right on every runner (no driver-side state, no DirectRunner-only tricks).
Numbers add up, dicts merge key by key, lists concatenate (and are sorted when published).
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics


def merge_stats(into: dict, other: dict) -> dict:
    """Merge `other` into `into` (mutating and returning `into`)."""
    for key, value in other.items():
        if key not in into:
            into[key] = _copy(value)
        elif isinstance(value, dict):
            merge_stats(into[key], value)
        elif isinstance(value, list):
            into[key].extend(value)
        elif isinstance(value, bool):
            into[key] = into[key] or value
        elif isinstance(value, (int, float)):
            into[key] += value
        else:
            into[key] = value
    return into


def _copy(value):
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return list(value)
    return value


class MergeStatsFn(beam.CombineFn):
    """Combines every step's statistics into one dict."""

    def create_accumulator(self):
        return {}

    def add_input(self, accumulator, element):
        return merge_stats(accumulator, element)

    def merge_accumulators(self, accumulators):
        merged = {}
        for acc in accumulators:
            merge_stats(merged, acc)
        return merged

    def extract_output(self, accumulator):
        return accumulator


def count(name: str, value: int) -> None:
    """Also publish a count as a Beam metric (namespace `trackpipe`), so the Dataflow and Flink
    UIs show it while the job runs."""
    if value:
        Metrics.counter("trackpipe", name).inc(value)
