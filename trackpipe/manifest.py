"""The run manifest `OUT/_manifest.json`: what was read, what became of every line. No Beam.

Built from the merged statistics of the pipeline (transforms.stats) and the run's settings.
Its reconciliation must balance:

    lines_read = blank_lines + rejected + duplicates_removed + rows_written + outside_selected_dates
                 + retired + expired

`outside_selected_dates` counts the events (kept rows and their removed copies) that belong to
days the run was asked not to write (`--date`, `--start-date/--end-date`); it is 0 otherwise.
`retired` counts the lines of retired learners (config `privacy.retired_users_file`), dropped at
parse time; `expired` the events of days the retention config would remove at once (rows, and
duplicates-audit lines under the audit's own retention), not written.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trackpipe import __version__
from trackpipe.events.layout import MANIFEST_NAME, RUNS_DIR  # noqa: F401 - part of this module's interface

MANIFEST_VERSION = 1
TOP_NAMES = 50
MAX_EXAMPLES = 5


@dataclass(frozen=True)
class RunInfo:
    """Driver-side facts about a run that the publish step needs (picklable, small)."""

    run_id: str
    output: str
    started_at: str
    options: dict
    config: dict
    site: str
    dates: tuple[str, ...] | None  # explicit selection, or None for "every day found"
    packages: bool
    max_reject_ratio: float
    extra: dict = field(default_factory=dict)


def _sorted(d: dict) -> dict:
    return {k: d[k] for k in sorted(d)}


def _total(d: dict) -> int:
    return int(sum(d.values()))


def build(stats: dict, info: RunInfo, published_at: str, dates: list[str], partitions: list[dict], written: dict | None = None) -> dict:
    rejected = _sorted(stats.get("rejected", {}))
    dups = stats.get("duplicates_removed", {})
    by_kind = _sorted(dups.get("by_kind", {}))
    rows = {stream: _sorted(days) for stream, days in sorted(stats.get("rows_written", {}).items())}
    rows_total = sum(_total(days) for days in rows.values())
    names = sorted(dups.get("by_name", {}).items(), key=lambda kv: (-kv[1], kv[0]))
    reconciliation = {
        "lines_read": stats.get("lines_read", 0),
        "blank_lines": stats.get("blank_lines", 0),
        "rejected": _total(rejected),
        "duplicates_removed": _total(by_kind),
        "rows_written": rows_total,
        "outside_selected_dates": stats.get("outside_selected_dates", 0),
        "retired": stats.get("retired", 0),
        "expired": stats.get("expired", 0),
    }
    accounted = sum(v for k, v in reconciliation.items() if k != "lines_read")
    reconciliation["balanced"] = accounted == reconciliation["lines_read"]
    files = stats.get("files", {})
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "trackpipe_version": __version__,
        "run_id": info.run_id,
        "started_at": info.started_at,
        "published_at": published_at,
        "options": info.options,
        "config": info.config,
        "dates": dates,
        "inputs": [{"path": path, **files[path]} for path in sorted(files)],
        "lines_read": reconciliation["lines_read"],
        "blank_lines": reconciliation["blank_lines"],
        "events_parsed": stats.get("events_parsed", 0),
        "rejected": rejected,
        "rejected_total": reconciliation["rejected"],
        "duplicates_removed": {
            "total": reconciliation["duplicates_removed"],
            "by_kind": by_kind,
            "by_source": _sorted(dups.get("by_source", {})),
            "by_source_and_kind": {s: _sorted(k) for s, k in sorted(dups.get("by_source_kind", {}).items())},
            "by_dt": _sorted(dups.get("by_dt", {})),
            "top_names": [[name, n] for name, n in names[:TOP_NAMES]],
        },
        "rows_written": rows,
        "rows_written_total": rows_total,
        "rows_written_by_source": _sorted(stats.get("rows_by_source", {})),
        "outside_selected_dates": reconciliation["outside_selected_dates"],
        "retired": reconciliation["retired"],
        "expired": reconciliation["expired"],
        "input_errors": _one_per_file(stats.get("input_errors", [])),
        # What each day costs to keep: bytes written per output kind (warehouse per stream and
        # day, duplicates audit per day, rejects, research packages per day) and raw bytes read.
        "bytes_read": sum(files[path].get("bytes", 0) for path in files),
        "bytes_written": written or {},
        "partitions": partitions,
        "research_package": None,
        "reconciliation": reconciliation,
    }
    if info.packages:
        packages = stats.get("packages", {})
        manifest["research_package"] = {
            "files": [{"path": path, **packages[path]} for path in sorted(packages)],
            "left_out": _sorted(stats.get("package_left_out", {})),
            # A few of the org values left out, per reason (learner-controlled text, cut short).
            "left_out_examples": {
                reason: sorted(set(values))[:MAX_EXAMPLES] for reason, values in sorted(stats.get("package_left_out_examples", {}).items())
            },
        }
    return manifest


def _one_per_file(errors: list[dict]) -> list[dict]:
    """Input errors sorted by file, one per file (a split file's ranges may each report it)."""
    first: dict[str, dict] = {}
    for error in sorted(errors, key=lambda e: (e["file"], -e.get("lines_read", 0), e["error"])):
        first.setdefault(error["file"], error)
    return [first[f] for f in sorted(first)]


def reject_ratio(manifest: dict) -> float:
    """Share of non-blank lines that were rejected."""
    candidates = manifest["lines_read"] - manifest["blank_lines"]
    return manifest["rejected_total"] / candidates if candidates else 0.0
