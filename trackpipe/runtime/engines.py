"""Runner defaults for the real engines, so that

    trackpipe run --input ... --output ... --runner FlinkRunner --flink_master 127.0.0.1:8081
    trackpipe run --input ... --output ... --runner PrismRunner

work with no other flag on a machine where `make engines` (`scripts/engines.sh fetch`) has
cached the engines. `with_runner_defaults(beam_flags)` returns the flags with these added, each
only when the user gave no such flag:

FlinkRunner
  --flink_job_server_jar J   the job server the fetch assembled from Maven Central (Maven Central
                             serves no Flink job server jar for Beam 2.77; Beam would try to
                             download one and fail). Only when --flink_version is absent or names
                             the version J is for.
  --flink_version 1.19       the Flink version of J (and of the cluster `make flink-up` starts).
  --environment_type LOOPBACK
                             the SDK workers run as threads of this process: nothing to install
                             on the cluster, and no Docker. Only for a cluster on this machine;
                             a remote cluster needs the user's own environment (see
                             docs/running-on-flink.md), and saying so beats a job that hangs.
  --parallelism N            the cluster's task slots, from its REST API (`/overview`), else 2.
                             Without it, Beam runs every step with parallelism 1.
PrismRunner
  --prism_location P         the cached Prism binary of this Beam version (else Beam downloads
                             one from GitHub).
  --prism_log_level error    Prism's own log lines stay off the terminal.

Other runners are left alone. Where the cache is: $TRACKPIPE_ENGINES_DIR, else `.cache/engines`
in the checkout trackpipe runs from; `engines.json` there says what was fetched.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import socket
import urllib.request
from pathlib import Path

from trackpipe.errors import ConfigError

ENGINES_DIR_VARIABLE = "TRACKPIPE_ENGINES_DIR"
FALLBACK_PARALLELISM = 2
REST_TIMEOUT_S = 3.0
LOCAL_MASTERS = ("[local]", "[auto]")
# Flags that choose the SDK workers' environment: any of them means "the user's own".
ENVIRONMENT_FLAGS = (
    "--environment_type",
    "--environment_config",
    "--environment_option",
    "--environment_options",
    "--sdk_container_image",
    "--worker_harness_container_image",
)
FETCH_HINT = "run `make engines` (scripts/engines.sh fetch) to build it"


def engines_dir() -> Path:
    """The folder `scripts/engines.sh fetch` fills."""
    given = os.environ.get(ENGINES_DIR_VARIABLE)
    if given:
        return Path(given)
    return Path(__file__).resolve().parents[2] / ".cache" / "engines"


def cached_engines() -> dict[str, str]:
    """What the fetch recorded in engines.json, with paths made absolute; {} when nothing is
    cached (or the files it names are gone)."""
    folder = engines_dir()
    try:
        recorded = json.loads((folder / "engines.json").read_text())
    except (OSError, ValueError):
        return {}
    found = dict(recorded)
    for key in ("flink_home", "flink_job_server_jar", "prism"):
        path = folder / recorded.get(key, "")
        if key in recorded and path.exists():
            found[key] = str(path)
        else:
            found.pop(key, None)
    return found


def given_flags(beam_flags: list[str], names: tuple[str, ...]) -> dict[str, str | None]:
    """The value of each of `names` in the flags (`--flag value` or `--flag=value`); only the
    flags present are keys."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for name in names:
        parser.add_argument(name, nargs="?", default=argparse.SUPPRESS)
    known, _ = parser.parse_known_args(beam_flags)
    return {"--" + key: value for key, value in vars(known).items()}


def runner_kind(beam_flags: list[str]) -> str:
    """`flink`, `prism`, `direct`, ... from --runner (a class name or a dotted path)."""
    runner = given_flags(beam_flags, ("--runner",)).get("--runner") or "DirectRunner"
    return runner.rsplit(".", 1)[-1].lower().removesuffix("runner")


def with_runner_defaults(beam_flags: list[str]) -> list[str]:
    """The Beam flags with the defaults described in the module docstring added."""
    kind = runner_kind(beam_flags)
    if kind == "flink":
        return beam_flags + flink_defaults(beam_flags, cached_engines())
    if kind == "prism":
        return beam_flags + prism_defaults(beam_flags, cached_engines())
    return beam_flags


def flink_defaults(beam_flags: list[str], cached: dict[str, str]) -> list[str]:
    """The flags FlinkRunner gets from trackpipe (see the module docstring)."""
    names = ("--flink_master", "--flink_version", "--flink_job_server_jar", "--parallelism", *ENVIRONMENT_FLAGS)
    given = given_flags(beam_flags, names)
    master = given.get("--flink_master") or "[auto]"
    added: list[str] = []
    if "--flink_job_server_jar" not in given:
        version = given.get("--flink_version")
        jar = cached.get("flink_job_server_jar")
        if jar and version in (None, cached.get("flink_job_server_flink_version")):
            added += ["--flink_job_server_jar", jar]
            if version is None:
                added += ["--flink_version", cached["flink_job_server_flink_version"]]
        elif version is None:
            raise ConfigError(
                "FlinkRunner needs Beam's Flink job server, and Maven Central serves none for this Beam version: "
                f"{FETCH_HINT}, or give --flink_job_server_jar (and --flink_version)"
            )
    if not any(flag in given for flag in ENVIRONMENT_FLAGS):
        if not is_local_master(master):
            raise ConfigError(
                f"--flink_master {master} is not on this machine: give the SDK workers' environment "
                "(--environment_type EXTERNAL, PROCESS or DOCKER, with trackpipe installed there; "
                "see docs/running-on-flink.md)"
            )
        added += ["--environment_type", "LOOPBACK"]
    if "--parallelism" not in given:
        added += ["--parallelism", str(cluster_slots(master) or FALLBACK_PARALLELISM)]
    return added


def prism_defaults(beam_flags: list[str], cached: dict[str, str]) -> list[str]:
    """The flags PrismRunner gets from trackpipe (see the module docstring)."""
    given = given_flags(beam_flags, ("--prism_location", "--prism_log_level"))
    added: list[str] = []
    if "--prism_location" not in given and cached.get("prism") and cached.get("prism_beam_version") == _beam_version():
        added += ["--prism_location", cached["prism"]]
    if "--prism_log_level" not in given:
        added += ["--prism_log_level", "error"]
    return added


def _beam_version() -> str:
    from apache_beam.version import __version__

    return __version__


def _host_of(master: str) -> str:
    address = master.split("://", 1)[-1].split("/", 1)[0]
    if address.startswith("["):  # [::1]:8081
        return address[1:].split("]", 1)[0]
    return address.rsplit(":", 1)[0] if address.count(":") == 1 else address


def is_local_master(master: str) -> bool:
    """Whether --flink_master is a cluster on this machine (a loopback address, `localhost`, or
    Beam's embedded `[local]`/`[auto]`), where LOOPBACK workers can be reached."""
    if master in LOCAL_MASTERS:
        return True
    host = _host_of(master)
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%", 1)[0]).is_loopback for a in addresses)


def cluster_slots(master: str) -> int | None:
    """The task slots of the Flink cluster whose REST API is at `master` (`/overview`'s
    `slots-total`), or None when it does not answer or has none yet."""
    if master in LOCAL_MASTERS:
        return None
    base = master if "://" in master else f"http://{master}"
    # A cluster on this machine is asked directly, never through an HTTP proxy from the environment.
    handlers = [urllib.request.ProxyHandler({})] if is_local_master(master) else []
    try:
        with urllib.request.build_opener(*handlers).open(base.rstrip("/") + "/overview", timeout=REST_TIMEOUT_S) as answer:
            slots = int(json.load(answer).get("slots-total") or 0)
    except (OSError, ValueError, TypeError):
        return None
    return slots or None
