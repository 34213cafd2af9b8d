"""Driver side of `trackpipe run`: check everything that can be checked before any work, hold
the output's lock, run the pipeline, report. The pipeline itself is pipelines.tracking_logs.

Order of a run:
1. options, config, org keys and dates are checked (errors name the flag or key);
2. the output's lock is taken (a second concurrent run refuses, naming the owner);
3. a publish left half-done by a killed run is finished, dead runs' work folders removed;
4. the pipeline runs: read, parse, deduplicate, write to `_tmp/<run>/`, check, publish;
5. the manifest is read back and summarised; `--load` loads the run's days.
A failure at any step leaves the previous outputs as they were and prints one line.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import re
import secrets
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field

from trackpipe import __version__, storage
from trackpipe.config import Config, KeySource, load_config
from trackpipe.console import printable
from trackpipe.dates import selected_days
from trackpipe.errors import ConfigError, TrackpipeError
from trackpipe.events.layout import MANIFEST_NAME, WAREHOUSE_DIR
from trackpipe.events.partitions import Cutoffs
from trackpipe.events.retirement import RetiredUsers
from trackpipe.events.times import date_to_day, day_to_date
from trackpipe.gpg import PackageKeys, resolve_keys
from trackpipe.manifest import RunInfo
from trackpipe.privacy.retired_users import load_retired
from trackpipe.storage import s3_settings
from trackpipe.storage.s3_settings import redact
from trackpipe.storage.workdir import WorkDir

log = logging.getLogger("trackpipe")
SUMMARY_DAYS = 8


@dataclass(frozen=True)
class Job:
    """Everything the pipeline needs to know, decided by the driver (picklable)."""

    inputs: tuple[str, ...]
    config: Config
    workdir: WorkDir
    days: frozenset[int] | None
    packages: bool
    skip_corrupt: bool
    shards: int
    keys: PackageKeys
    info: RunInfo
    quiet: bool = False
    retired: RetiredUsers = field(default_factory=RetiredUsers)  # salted digests only
    cutoffs: Cutoffs = Cutoffs()
    pseudonym_key: KeySource | None = None  # where workers find the key (never the key)


def new_run_id() -> str:
    now = _dt.datetime.now(_dt.UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def normalise_output(output: str) -> str:
    if storage.is_remote(output):
        return output.rstrip("/")
    return os.path.abspath(output)


def _runs_here(beam_flags: list[str]) -> bool:
    """Whether the workers run on this machine (DirectRunner, Prism, the embedded portable job
    server, or any runner with LOOPBACK workers, which run inside this process), so a local
    scratch folder is reachable by all of them."""
    import argparse

    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--runner")
    parser.add_argument("--job_endpoint")
    parser.add_argument("--environment_type")
    known, _ = parser.parse_known_args(beam_flags)
    runner = (known.runner or "DirectRunner").lower().removesuffix("runner")
    if (known.environment_type or "").upper() == "LOOPBACK":
        return True
    return runner in ("direct", "fnapi", "prism") or (runner == "portable" and known.job_endpoint in (None, "embed"))


def scratch_dir(given: str | None, output: str, beam_flags: list[str]) -> str | None:
    """The scratch folder: as given; else local temp when the output is remote but the workers
    are local (uploading chunks to the object store and back would only cost time); else None
    (inside the output's staging folder)."""
    if given:
        return given if storage.is_remote(given) else os.path.abspath(given)
    if storage.is_remote(output) and _runs_here(beam_flags):
        import tempfile

        return os.path.join(tempfile.gettempdir(), "trackpipe-scratch")
    return None


def prepare(opts, beam_flags: list[str]) -> Job:
    """Check options and config; nothing is written."""
    overrides = {"site": opts.site, "format": opts.format, "max_reject_ratio": opts.max_reject_ratio}
    config = load_config(opts.config, overrides)
    if opts.dedup_shards < 1:
        raise ConfigError("--dedup-shards must be at least 1")
    days = selected_days(opts.date, opts.start_date, opts.end_date)
    packages = not opts.no_package
    keys = resolve_keys(config.orgs) if packages else PackageKeys()
    output = normalise_output(opts.output)
    inputs = tuple(p if storage.is_remote(p) else os.path.abspath(p) for p in opts.input)
    run_id = new_run_id()
    info = RunInfo(
        run_id=run_id,
        output=output,
        started_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        options={
            "input": list(inputs),
            "output": output,
            "config": opts.config,
            "site": config.site,
            "format": config.format,
            "date": opts.date,
            "start_date": opts.start_date,
            "end_date": opts.end_date,
            "skip_corrupt_inputs": opts.skip_corrupt_inputs,
            "no_package": opts.no_package,
            "max_reject_ratio": config.max_reject_ratio,
            "dedup_shards": opts.dedup_shards,
            "scratch_dir": opts.scratch_dir,
            "beam": redact(beam_flags),
        },
        config=config.to_dict(),
        site=config.site,
        dates=None if days is None else tuple(day_to_date(d) for d in sorted(days)),
        packages=packages,
        max_reject_ratio=config.max_reject_ratio,
    )
    return Job(
        inputs=inputs,
        config=config,
        workdir=WorkDir(output, run_id, s3_settings.settings(), scratch_dir(opts.scratch_dir, output, beam_flags)),
        days=days,
        packages=packages,
        skip_corrupt=opts.skip_corrupt_inputs,
        shards=opts.dedup_shards,
        keys=keys,
        info=info,
        quiet=bool(opts.quiet),
        retired=load_retired(config.privacy.retired_users_file),
        cutoffs=Cutoffs.of(config.retention, date_to_day(_dt.datetime.now(_dt.UTC).date().isoformat())),
        pseudonym_key=_pseudonym_key_source(config, packages),
    )


def _pseudonym_key_source(config: Config, packages: bool) -> KeySource | None:
    """Where workers read the pseudonym key; checked here, so a run that needs a key and has none
    stops at start with one line."""
    if not packages or not config.any_pseudonymised():
        return None
    source = KeySource(config.privacy.pseudonym_key_file)
    source.load()
    return source


def preflight(job: Job) -> None:
    """Check object-store buckets (s3://, gs://), endpoints and credentials before anything runs
    or is written, so a missing bucket, refused credentials or an unreachable endpoint give one
    clear line."""
    storage.check_buckets([job.info.output, *job.inputs, job.workdir.scratch])


def execute(job: Job, pipeline_options, build) -> dict:
    """Lock, recover, run the pipeline built by `build(p, job)`, return the published manifest."""

    from trackpipe.storage.journal import recover
    from trackpipe.storage.lock import OutputLock

    output = job.info.output
    lock = OutputLock(output, job.info.run_id)
    try:
        try:
            lock.acquire()
            completed = recover(output)
        except OSError as exc:
            raise TrackpipeError(storage.disk_error_message(exc, getattr(exc, "filename", None) or output)) from None
        if completed:
            log.warning("finished the publish of interrupted run(s) %s before starting", ", ".join(completed))
        result = None
        try:
            pipeline = make_pipeline(pipeline_options)
            build(pipeline, job)
            with progress_display(job):
                result = pipeline.run()
                result.wait_until_finish()
            state = str(getattr(result, "state", "DONE"))
            if "DONE" not in state.upper():
                raise TrackpipeError(f"the pipeline ended in state {state}")
        except Exception as exc:
            raise TrackpipeError(_failure_message(job.workdir, exc)) from exc
        except Terminated:
            _cancel(result)
            raise
        finally:
            _cleanup(job.workdir)
        manifest = read_manifest(output)
        if manifest.get("run_id") != job.info.run_id:
            raise TrackpipeError("the pipeline finished but did not publish (the manifest belongs to another run)")
        _save_metrics(output, job.info.run_id, result)
        return manifest
    finally:
        lock.release()


def progress_display(job: Job):
    """Live progress on stderr while the pipeline runs (nothing with --quiet)."""
    from contextlib import nullcontext

    from trackpipe.runtime.progress import PROGRESS_DIR, ProgressMonitor

    if job.quiet:
        return nullcontext()
    return ProgressMonitor(job.workdir.path(PROGRESS_DIR))


def beam_counters(result) -> dict[str, int]:
    """The run's `trackpipe` Beam counters (committed values), or {} where the runner has none."""
    try:
        from apache_beam.metrics.metric import MetricsFilter

        counters = result.metrics().query(MetricsFilter().with_namespace("trackpipe"))["counters"]
    except Exception:  # noqa: BLE001 - metrics are a convenience; some runners do not report them
        return {}
    totals: dict[str, int] = {}
    for counter in counters:
        value = counter.committed if counter.committed is not None else counter.attempted
        totals[counter.key.metric.name] = totals.get(counter.key.metric.name, 0) + int(value or 0)
    return dict(sorted(totals.items()))


def _save_metrics(output: str, run_id: str, result) -> None:
    """Keep the Beam counters beside the run's manifest copy (`_runs/<run>.metrics.json`)."""
    counters = beam_counters(result)
    if counters:
        path = storage.join(output, "_runs", f"{run_id}.metrics.json")
        try:
            storage.write_atomic(path, json.dumps(counters, indent=2).encode())
        except OSError as exc:
            log.warning("could not save the run's metrics to %s: %s", path, exc)


def make_pipeline(pipeline_options):
    """A Beam pipeline on the runner these options ask for.

    For the DirectRunner (the default), Beam's FnApiRunner, which is what the DirectRunner
    itself runs batch pipelines on and which honours --direct_running_mode and
    --direct_num_workers. Beam 2.77's DirectRunner first tries to download and start the Prism
    runner from GitHub; going straight to the FnApiRunner keeps local runs offline, predictable
    and the same on every machine. In multi_processing mode the worker processes are Beam's
    own worker started through trackpipe.runtime.worker, which keeps their start-up logs off the
    terminal."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
    from apache_beam.runners.runner import create_runner

    name = pipeline_options.view_as(StandardOptions).runner
    if name and name.lower() not in ("direct", "directrunner"):
        return beam.Pipeline(runner=create_runner(name), options=pipeline_options)
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle
    from apache_beam.transforms import environments

    environment = None
    if pipeline_options.view_as(DirectOptions).direct_running_mode == "multi_processing":
        pipeline_options = PipelineOptions.from_dictionary(pipeline_options.get_all_options())
        pipeline_options.view_as(DirectOptions).direct_running_mode = "in_memory"  # workers: below
        if not pipeline_options.view_as(DirectOptions).direct_num_workers:
            pipeline_options.view_as(DirectOptions).direct_num_workers = os.cpu_count() or 1
        environment = environments.SubprocessSDKEnvironment.from_command_string(f"{sys.executable} -m trackpipe.runtime.worker")
    encoded = JobServiceHandle.encode_pipeline_options(pipeline_options.get_all_options())
    info = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
    runner = fn_runner.FnApiRunner(default_environment=environment, provision_info=info)
    return beam.Pipeline(runner=runner, options=pipeline_options)


_RAISED = re.compile(r"(?:TrackpipeError|InputError|ConfigError): (.+?)(?: \[while running '[^']*'\])*\s*$", re.MULTILINE)


_WHILE_RUNNING = re.compile(r" \[while running .*$")


def _failure_message(workdir: WorkDir, exc: BaseException) -> str:
    """One line for the user: what a worker recorded, else the TrackpipeError found in the
    runner's exception text (runners wrap worker exceptions in their own), else its last line."""
    recorded = workdir.errors()
    if recorded:
        return recorded[0]
    if isinstance(exc, TrackpipeError):
        return str(exc)
    text = str(exc)
    found = _RAISED.findall(text)
    if found:
        return found[-1].strip()
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else exc.__class__.__name__
    last = _WHILE_RUNNING.sub("", last)
    return f"the pipeline failed: {last[:500]}"


def _cleanup(workdir: WorkDir) -> None:
    """Remove the run's work folder unless it holds a publish journal (recover finishes it)."""
    from trackpipe.storage.journal import JOURNAL

    try:
        storage.delete_tree(workdir.scratch_root)
        if not storage.exists(workdir.path(JOURNAL)):
            storage.delete_tree(workdir.root)
        parent = os.path.dirname(workdir.root)
        if not storage.is_remote(parent) and os.path.isdir(parent) and not os.listdir(parent):
            os.rmdir(parent)  # no empty `_tmp/` left behind
    except Exception as exc:  # noqa: BLE001 - cleanup must not hide the run's own outcome
        log.warning("could not remove the work folder %s: %s", workdir.root, exc)


def read_manifest(output: str) -> dict:
    path = storage.join(output, MANIFEST_NAME)
    try:
        return json.loads(storage.read_bytes(path))
    except (OSError, ValueError) as exc:
        raise TrackpipeError(f"cannot read the run manifest {path}: {exc}") from None


def summary(manifest: dict, wall_seconds: float) -> str:
    """The closing table printed after a run."""
    rec = manifest["reconciliation"]
    lines_read = rec["lines_read"]
    events = manifest.get("events_parsed", 0)
    rate = events / wall_seconds if wall_seconds > 0 else 0.0
    out = [f"trackpipe {__version__} run {manifest['run_id']}: {wall_seconds:.1f} s, {rate:,.0f} events/s", ""]

    def row(label, value):
        out.append(f"  {label:<26} {value}")

    if manifest["options"].get("parallelism"):
        row("runner", manifest["options"]["parallelism"])
    row("input files", f"{len(manifest['inputs']):,}")
    row("lines read", f"{lines_read:,}")
    row("blank lines", f"{rec['blank_lines']:,}")
    non_blank = max(lines_read - rec["blank_lines"], 1)
    row("rejected", f"{rec['rejected']:,} ({rec['rejected'] / non_blank:.2%} of non-blank lines)")
    for reason, n in sorted(manifest["rejected"].items(), key=lambda kv: -kv[1])[:3]:
        row(f"  {reason}", f"{n:,}")
    dups = manifest["duplicates_removed"]
    kinds = ", ".join(f"{k} {v:,}" for k, v in dups["by_kind"].items())
    row("duplicates removed", f"{dups['total']:,}" + (f"  ({kinds})" if kinds else ""))
    kept_by_source = manifest.get("rows_written_by_source", {})
    for source, n in dups.get("by_source", {}).items():
        share = n / (n + kept_by_source.get(source, 0)) if n + kept_by_source.get(source, 0) else 0.0
        shown = printable(source)
        row(f"  from {shown}", f"{n:,} ({share:.2%} of {shown} events)")
    if rec["outside_selected_dates"]:
        row("outside selected days", f"{rec['outside_selected_dates']:,}")
    if rec.get("retired"):
        row("retired learners", f"{rec['retired']:,} lines dropped (privacy.retired_users_file)")
    if rec.get("expired"):
        row("expired", f"{rec['expired']:,} events of days retention removes at once, not written")
    row("rows written", f"{rec['rows_written']:,}")
    for stream, days in manifest["rows_written"].items():
        if len(days) <= SUMMARY_DAYS:
            for date, n in days.items():
                row(f"  {stream} {date}", f"{n:,}")
        else:
            first, last = min(days), max(days)
            row(f"  {stream}", f"{sum(days.values()):,} over {len(days)} days ({first} .. {last})")
            for date, n in sorted(days.items(), key=lambda kv: -kv[1])[:3]:
                row(f"    busiest {date}", f"{n:,}")
    if manifest.get("input_errors"):
        row("input errors", f"{len(manifest['input_errors'])} (see the manifest)")
    balance = "balanced" if rec["balanced"] else "NOT BALANCED"
    terms = ["blank", "rejected", "duplicates", "rows"]
    terms += [
        name for key, name in (("outside_selected_dates", "outside days"), ("retired", "retired"), ("expired", "expired")) if rec.get(key)
    ]
    row("reconciliation", f"lines read = {' + '.join(terms)}: {balance}")
    return "\n".join(out)


def outputs_text(manifest: dict) -> str:
    out = manifest["options"]["output"]
    lines = ["outputs:"]
    by_stream: dict[str, list] = {}
    for part in manifest["partitions"]:
        by_stream.setdefault(part["stream"], []).append(part)
    for stream, parts in by_stream.items():
        rows = sum(p["rows"] for p in parts)
        where = storage.join(out, WAREHOUSE_DIR, stream)
        lines.append(f"  {where}/dt=...  ({len(parts)} day partitions, {rows:,} rows)")
    pkg = manifest.get("research_package")
    if pkg is not None:
        lines.append(f"  {storage.join(out, 'research_package')}  ({len(pkg['files'])} package files)")
    lines.append(f"  {storage.join(out, 'duplicates')}  (removed copies, by day of the kept row)")
    lines.append(f"  {storage.join(out, 'rejects')}  (rejected lines with reasons)")
    lines.append(f"  {storage.join(out, MANIFEST_NAME)}  (run manifest)")
    return "\n".join(lines)


# With no runner flags, a run uses every core once its input is big enough to pay for starting
# worker processes (about 3 s here): below this many bytes of (estimated) uncompressed input,
# one process in memory is faster. Gzip files count eight times their size.
PARALLEL_MIN_BYTES = 96 * 1024 * 1024
GZIP_RATIO = 8


def default_parallelism(beam_flags: list[str], inputs: tuple[str, ...]) -> tuple[list[str], str]:
    """The Beam flags trackpipe adds when the user gave none about parallelism, and a sentence
    for the summary saying what runs and why. Explicit flags (--runner, --direct_running_mode,
    --direct_num_workers) always win."""
    import argparse

    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for flag in ("--runner", "--direct_running_mode", "--direct_num_workers"):
        parser.add_argument(flag)
    known, _ = parser.parse_known_args(beam_flags)
    runner = known.runner or "DirectRunner"
    if runner.lower().removesuffix("runner") not in ("direct", ""):
        return [], f"{runner} (as asked)"
    if known.direct_running_mode or known.direct_num_workers:
        mode = known.direct_running_mode or "in_memory"
        workers = known.direct_num_workers or (os.cpu_count() if mode == "multi_processing" else 1)
        return [], f"DirectRunner, {mode}, {workers} worker(s) (as asked)"
    estimate = 0
    for pattern in inputs:
        try:
            estimate += sum(size * (GZIP_RATIO if path.endswith(".gz") else 1) for path, size in storage.match(pattern))
        except (OSError, TrackpipeError):
            continue  # the pipeline says what is wrong with this input
    cores = os.cpu_count() or 1
    size = f"{estimate / 1e6:,.0f} MB"
    if cores > 1 and estimate >= PARALLEL_MIN_BYTES:
        flags = ["--direct_running_mode=multi_processing", f"--direct_num_workers={cores}"]
        return flags, f"DirectRunner, {cores} worker processes (default: input ~{size} >= {PARALLEL_MIN_BYTES // 2**20} MiB)"
    why = "one core" if cores == 1 else f"input ~{size} < {PARALLEL_MIN_BYTES // 2**20} MiB"
    return [], f"DirectRunner, in one process (default: {why})"


class Terminated(BaseException):
    """SIGTERM (a scheduler's timeout, `kill`) unwinds the run like an error that nothing catches
    on the way: the lock is released, the work folder removed (a started publish keeps its journal
    for the next run), and Beam's atexit hooks stop a job server it started (a Flink job server is
    a JVM that would outlive the default SIGTERM)."""


@contextlib.contextmanager
def _sigterm_unwinds():
    def raise_terminated(signum, frame):
        raise Terminated(signal.Signals(signum).name)

    try:
        previous = signal.signal(signal.SIGTERM, raise_terminated)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _cancel(result) -> None:
    """Ask the runner to stop a job it still runs (Flink, Prism); the DirectRunner has none left."""
    if result is None:
        return
    try:
        result.cancel()
    except Exception:  # noqa: BLE001 - best effort while stopping
        pass


def launch(opts, beam_flags: list[str], build) -> int:
    """Run the job the parsed options describe with the pipeline `build(p, job)` makes: check,
    lock, run, publish, report, and load with --load. Returns the exit status."""
    with _sigterm_unwinds():
        return _launch(opts, beam_flags, build)


def _launch(opts, beam_flags: list[str], build) -> int:
    from apache_beam.options.pipeline_options import PipelineOptions

    started = time.monotonic()

    try:
        from apache_beam.io.filesystems import FileSystems

        from trackpipe.runtime.engines import with_runner_defaults
        from trackpipe.storage.s3_settings import configure_s3

        beam_flags = configure_s3(beam_flags)
        beam_flags = with_runner_defaults(beam_flags)
        job = prepare(opts, beam_flags)
        added, parallelism = default_parallelism(beam_flags, job.inputs)
        job.info.options["parallelism"] = parallelism
        pipeline_options = PipelineOptions(beam_flags + added)
        FileSystems.set_options(pipeline_options)
        preflight(job)
        manifest = execute(job, pipeline_options, build)
        wall = time.monotonic() - started
        if not opts.quiet:
            print(summary(manifest, wall))
            print()
            print(outputs_text(manifest))
        if opts.load:
            from trackpipe.warehouse.loader import load_output

            try:
                report = load_output(job.info.output, opts.load, dates=list(manifest["dates"]), config=job.config)
            except TrackpipeError as exc:
                raise TrackpipeError(
                    f"the run {job.info.run_id} was published, but loading it failed: {exc} "
                    f"(retry with: trackpipe load --output {job.info.output} --warehouse ...)"
                ) from None
            if not opts.quiet:
                print()
                print(report)
    except TrackpipeError as exc:
        if os.environ.get("TRACKPIPE_DEBUG"):
            traceback.print_exc()
        print(f"trackpipe: error: {exc}", file=sys.stderr)
        return 1
    except Terminated as exc:
        print(
            f"trackpipe: error: stopped by {exc}: the lock is released and nothing of this run was published "
            "(a publish that had begun is finished by the next run of this output)",
            file=sys.stderr,
        )
        return 128 + signal.SIGTERM
    return 0
