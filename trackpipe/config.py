"""Domain settings: a checked YAML file loaded once into frozen objects. No Beam here.

Runner and path flags are pipeline options (pipelines/options.py); everything about *what* the
data means (internal prefixes, the duplicate rule, orgs, site) lives here, so a run is fully
described by its options plus this config. Unknown keys, wrong types and bad values are refused
at start, naming the key. `configs/default.yaml` documents every key with its default.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field

import yaml

from trackpipe.errors import ConfigError
from trackpipe.events.orgs import MAX_ORG_CHARS, package_name
from trackpipe.events.schema import STREAM_INTERNAL_BI, STREAM_RESEARCH, STREAMS  # noqa: F401 - re-exported


@dataclass(frozen=True)
class DedupConfig:
    window_seconds: float = 5.0
    client_sources: tuple[str, ...] = ("browser", "mobile")
    # Delivery fields left out of an event's identity. `time` means the time field: `time`, or
    # `timestamp` where it stands in for a missing `time`.
    excluded_fields: tuple[str, ...] = ("time", "context.received_at")


@dataclass(frozen=True)
class ReadConfig:
    max_line_bytes: int = 16 * 1024 * 1024
    chunk_lines: int = 100_000
    chunk_bytes: int = 128 * 1024 * 1024
    reject_line_chars: int = 20_000
    # Files bigger than this are read as ranges of this size by several workers (gzip files
    # bigger than an eighth of it are decompressed into the scratch folder first); 0: never.
    split_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class OutputConfig:
    parquet_compression: str = "zstd"
    avro_codec: str = "deflate"


@dataclass(frozen=True)
class WarehouseConfig:
    research_table: str = "research_events"
    internal_bi_table: str = "internal_bi_events"
    loads_table: str = "trackpipe_loads"

    def table_for(self, stream: str) -> str:
        return self.research_table if stream == STREAM_RESEARCH else self.internal_bi_table


@dataclass(frozen=True)
class RetentionConfig:
    """How many days each output keeps (null: forever). `trackpipe expire` removes older days;
    a run never writes a day that would be removed at once."""

    warehouse_days: int | None = None
    duplicates_days: int | None = None
    packages_days: int | None = None
    runs_days: int | None = None


@dataclass(frozen=True)
class PrivacyConfig:
    # Retired learners (CSV `username,user_id`): their events are dropped at parse time.
    retired_users_file: str | None = None
    # Research packages with pseudonyms instead of usernames and user ids, and no IP (every org;
    # an org config can say otherwise per org).
    pseudonymise: bool = False
    # The HMAC key of the pseudonyms: this file, else the TRACKPIPE_PSEUDONYM_KEY variable.
    pseudonym_key_file: str | None = None


KEY_VARIABLE = "TRACKPIPE_PSEUDONYM_KEY"


@dataclass(frozen=True)
class KeySource:
    """Where the pseudonym key is read from: a file, else the TRACKPIPE_PSEUDONYM_KEY variable.
    Only this travels with the pipeline; each worker reads the key itself, so the key is never
    written anywhere (job graphs, manifests, logs)."""

    file: str | None = None

    def load(self) -> bytes:
        """The key's bytes; ConfigError, naming where it was looked for, when there is none."""
        if self.file:
            try:
                with open(self.file, "rb") as handle:
                    key = handle.read().strip()
            except OSError as exc:
                raise ConfigError(
                    f"cannot read the pseudonym key file {self.file} (privacy.pseudonym_key_file): {exc.strerror or exc}"
                ) from None
            where = f"the file {self.file}"
        else:
            key = os.environ.get(KEY_VARIABLE, "").strip().encode()
            where = f"the {KEY_VARIABLE} variable"
        if len(key) < 16:
            raise ConfigError(
                f"research packages are pseudonymised (privacy.pseudonymise) but {where} holds no key of at least 16 bytes: "
                f"set {KEY_VARIABLE} or privacy.pseudonym_key_file"
            )
        return key


@dataclass(frozen=True)
class OrgEntry:
    name: str
    other_names: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()
    pseudonymise: bool | None = None  # None: the main config's privacy.pseudonymise


@dataclass(frozen=True)
class OrgsConfig:
    """Who gets a research package. `orgs` empty and `listed` False: every org found gets one."""

    listed: bool = False
    orgs: tuple[OrgEntry, ...] = ()
    master_recipients: tuple[str, ...] = ()
    # Full-match regular expressions, case-insensitive; '' matches the empty host (an event with
    # `"host": ""`, from a worker process), never an event without a `host` field.
    exclude_hosts: tuple[str, ...] = ()

    def package_names(self, org: str) -> tuple[str, ...]:
        """The packages (safe, lower-case org names) an event of `org` goes into; none for an
        org without a safe form (trackpipe.events.orgs.package_name)."""
        name = package_name(org)
        if name is None:
            return ()
        if not self.listed:
            return (name,)
        return self.alias_map().get(name, ())

    def alias_map(self) -> dict[str, tuple[str, ...]]:
        """lower-case org or alias -> the lower-case names of the packages it feeds (sorted)."""
        mapping: dict[str, set[str]] = {}
        for entry in self.orgs:
            for alias in (entry.name, *entry.other_names):
                mapping.setdefault(alias.lower(), set()).add(entry.name.lower())
        return {alias: tuple(sorted(pkgs)) for alias, pkgs in mapping.items()}

    def recipients_for(self, package: str) -> tuple[str, ...]:
        own = next((e.recipients for e in self.orgs if e.name.lower() == package), ())
        return own + self.master_recipients

    def host_excluded(self, host) -> bool:
        if not self.exclude_hosts or not isinstance(host, str):
            return False
        return any(re.fullmatch(p, host, re.IGNORECASE) for p in self.exclude_hosts)


@dataclass(frozen=True)
class Config:
    site: str = "edx"
    format: str = "parquet"
    internal_prefixes: tuple[str, ...] = ("edx.bi.",)
    max_reject_ratio: float = 0.05
    dedup: DedupConfig = field(default_factory=DedupConfig)
    read: ReadConfig = field(default_factory=ReadConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    warehouse: WarehouseConfig = field(default_factory=WarehouseConfig)
    orgs_file: str | None = None
    orgs: OrgsConfig = field(default_factory=OrgsConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)

    def pseudonymised(self, package: str) -> bool:
        """Whether research package `package` (a safe, lower-case org name) is pseudonymised."""
        entry = next((e for e in self.orgs.orgs if e.name.lower() == package), None)
        if entry is not None and entry.pseudonymise is not None:
            return entry.pseudonymise
        return self.privacy.pseudonymise

    def any_pseudonymised(self) -> bool:
        return self.privacy.pseudonymise or any(e.pseudonymise for e in self.orgs.orgs)

    def to_dict(self) -> dict:
        """Plain data for the run manifest."""
        return _plain(dataclasses.asdict(self))


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# Loading and checking

_SECTIONS = {
    "dedup": DedupConfig,
    "read": ReadConfig,
    "output": OutputConfig,
    "warehouse": WarehouseConfig,
    "retention": RetentionConfig,
    "privacy": PrivacyConfig,
}


def _section_from_dict(cls, data):
    if not isinstance(data, dict):
        return cls()
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            value = data[f.name]
            values[f.name] = tuple(value) if isinstance(value, list) else value
    return cls(**values)


def config_from_dict(data: dict) -> Config:
    """A Config from its manifest form (Config.to_dict); unknown keys are ignored, missing ones
    keep their defaults (manifests of older versions)."""
    orgs_data = data.get("orgs") if isinstance(data.get("orgs"), dict) else {}
    orgs = OrgsConfig(
        listed=bool(orgs_data.get("listed", False)),
        orgs=tuple(
            _section_from_dict(OrgEntry, entry) for entry in orgs_data.get("orgs") or [] if isinstance(entry, dict) and entry.get("name")
        ),
        master_recipients=tuple(orgs_data.get("master_recipients") or ()),
        exclude_hosts=tuple(orgs_data.get("exclude_hosts") or ()),
    )
    top = {k: data[k] for k in ("site", "format", "max_reject_ratio", "orgs_file") if k in data}
    if isinstance(data.get("internal_prefixes"), list):
        top["internal_prefixes"] = tuple(data["internal_prefixes"])
    return Config(**top, **{name: _section_from_dict(cls, data.get(name)) for name, cls in _SECTIONS.items()}, orgs=orgs)


# Keys whose default is null: what else they take.
_OPTIONAL = {
    "retention.warehouse_days": int,
    "retention.duplicates_days": int,
    "retention.packages_days": int,
    "retention.runs_days": int,
    "privacy.retired_users_file": str,
    "privacy.pseudonym_key_file": str,
}
_PATHS = ("privacy.retired_users_file", "privacy.pseudonym_key_file")  # relative to the config file
_TOP_KEYS = {"site", "format", "internal_prefixes", "max_reject_ratio", "orgs_file", *_SECTIONS}
_SITE = re.compile(r"[a-z0-9][a-z0-9_\-]{0,31}")
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _type_name(expected) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(expected, str(expected))


def _check_scalar(key: str, value, expected):
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is int and isinstance(value, bool) or not isinstance(value, expected):
        raise ConfigError(f"config key '{key}' must be {_type_name(expected)}, got {value!r}")
    return value


def _check_str_list(key: str, value, allow_empty: bool = False) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list) or not all(isinstance(v, str) and (v or allow_empty) for v in value):
        kind = "strings" if allow_empty else "non-empty strings"
        raise ConfigError(f"config key '{key}' must be a list of {kind}, got {value!r}")
    return tuple(value)


def _check_keys(where: str, data: dict, allowed) -> None:
    if not isinstance(data, dict):
        raise ConfigError(f"config key '{where}' must be a mapping, got {data!r}")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(f"unknown config key '{prefix}{unknown[0]}' (known keys: {', '.join(sorted(allowed))})")


def _section(name: str, cls, data, config_path: str | None = None) -> object:
    defaults = cls()
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _check_keys(name, data, fields)
    values = {}
    for key, value in data.items():
        current = getattr(defaults, key)
        full = f"{name}.{key}"
        if full in _OPTIONAL:
            values[key] = None if value is None else _check_scalar(full, value, _OPTIONAL[full])
            if full in _PATHS and value and config_path and not os.path.isabs(value):
                values[key] = os.path.join(os.path.dirname(os.path.abspath(config_path)), value)
        elif isinstance(current, tuple):
            values[key] = _check_str_list(full, value)
        else:
            values[key] = _check_scalar(full, value, type(current))
    return cls(**values)


def _read_yaml(path: str, what: str):
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {path} is not valid YAML: {exc}") from None
    return {} if data is None else data


def load_config(path: str | None = None, overrides: dict | None = None) -> Config:
    """Read and check a config file (None: the defaults), then apply command-line overrides
    (e.g. `site`), and load the org config it names."""
    data = _read_yaml(path, "config file") if path else {}
    _check_keys("", data, _TOP_KEYS)
    values: dict = {}
    for key, value in data.items():
        if key in _SECTIONS:
            values[key] = _section(key, _SECTIONS[key], value, path)
        elif key == "internal_prefixes":
            values[key] = _check_str_list(key, value)
        elif key == "orgs_file":
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"config key 'orgs_file' must be a path or null, got {value!r}")
            if value and path and not os.path.isabs(value):
                value = os.path.join(os.path.dirname(os.path.abspath(path)), value)
            values[key] = value
        else:
            values[key] = _check_scalar(key, value, type(getattr(Config(), key)))
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
    config = Config(**values)
    _validate(config)
    if config.orgs_file:
        config = dataclasses.replace(config, orgs=load_orgs(config.orgs_file))
    return config


def _validate(config: Config) -> None:
    if not isinstance(config.site, str) or not _SITE.fullmatch(config.site):
        raise ConfigError(
            f"config key 'site' must be a short lower-case name like 'edx' (a-z, 0-9, _ and -, at most 32 characters), got {config.site!r}"
        )
    if config.format not in ("parquet", "avro"):
        raise ConfigError(f"config key 'format' must be 'parquet' or 'avro', got {config.format!r}")
    if not 0.0 <= config.max_reject_ratio <= 1.0:
        raise ConfigError(f"config key 'max_reject_ratio' must be between 0 and 1, got {config.max_reject_ratio}")
    window = config.dedup.window_seconds
    if not 0.0 <= window <= 86_400:
        raise ConfigError(f"config key 'dedup.window_seconds' must be between 0 and 86400, got {window}")
    for path in config.dedup.excluded_fields:
        if not re.fullmatch(r"[^.\s]+(\.[^.\s]+)*", path):
            raise ConfigError(f"config key 'dedup.excluded_fields' has a bad field path {path!r}")
    read = config.read
    for key in ("max_line_bytes", "chunk_lines", "chunk_bytes", "reject_line_chars"):
        if getattr(read, key) <= 0:
            raise ConfigError(f"config key 'read.{key}' must be positive, got {getattr(read, key)}")
    for key in ("warehouse_days", "duplicates_days", "packages_days", "runs_days"):
        days = getattr(config.retention, key)
        if days is not None and days < 1:
            raise ConfigError(f"config key 'retention.{key}' must be at least 1 (a number of days) or null (keep forever), got {days}")
    if read.split_bytes != 0 and read.split_bytes < 1024 * 1024:
        raise ConfigError(f"config key 'read.split_bytes' must be 0 (never split) or at least 1048576 (1 MiB), got {read.split_bytes}")
    if config.output.parquet_compression not in ("zstd", "snappy", "gzip", "lz4", "none"):
        raise ConfigError(
            "config key 'output.parquet_compression' must be one of zstd, snappy, gzip, lz4, none, "
            f"got {config.output.parquet_compression!r}"
        )
    if config.output.avro_codec not in ("null", "deflate"):
        raise ConfigError(f"config key 'output.avro_codec' must be 'null' or 'deflate', got {config.output.avro_codec!r}")
    for key in ("research_table", "internal_bi_table", "loads_table"):
        if not _TABLE.match(getattr(config.warehouse, key)):
            raise ConfigError(f"config key 'warehouse.{key}' must be a plain SQL identifier, got {getattr(config.warehouse, key)!r}")


_ORGS_TOP = {"orgs", "master_recipients", "exclude_hosts"}
_ORG_KEYS = {"other_names", "recipients", "pseudonymise"}


def load_orgs(path: str) -> OrgsConfig:
    """Read and check an org config (see configs/orgs.example.yaml)."""
    data = _read_yaml(path, "org config")
    _check_keys("", data, _ORGS_TOP)
    orgs_data = data.get("orgs") or {}
    if not isinstance(orgs_data, dict):
        raise ConfigError(f"org config key 'orgs' must map org names to settings, got {orgs_data!r}")
    entries = []
    for name, settings in sorted(orgs_data.items(), key=lambda kv: str(kv[0])):
        if isinstance(name, int) and not isinstance(name, bool):
            name = str(name)  # YAML reads an org named 123 as a number
        _check_org_name("orgs", name)
        settings = settings or {}
        _check_keys(f"orgs.{name}", settings, _ORG_KEYS)
        aliases = _check_str_list(f"orgs.{name}.other_names", settings.get("other_names", []))
        for alias in aliases:
            _check_org_name(f"orgs.{name}.other_names", alias)
        entries.append(
            OrgEntry(
                name=str(name),
                other_names=aliases,
                recipients=_resolve_keys(path, _check_str_list(f"orgs.{name}.recipients", settings.get("recipients", []))),
                pseudonymise=None
                if settings.get("pseudonymise") is None
                else _check_scalar(f"orgs.{name}.pseudonymise", settings["pseudonymise"], bool),
            )
        )
    hosts = _check_str_list("exclude_hosts", data.get("exclude_hosts", []), allow_empty=True)
    for pattern in hosts:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"org config key 'exclude_hosts' has a bad regular expression {pattern!r}: {exc}") from None
    return OrgsConfig(
        listed=True,
        orgs=tuple(entries),
        master_recipients=_resolve_keys(path, _check_str_list("master_recipients", data.get("master_recipients", []))),
        exclude_hosts=hosts,
    )


def _check_org_name(key: str, name) -> None:
    """Org names and aliases follow the rule that event orgs must pass to get a package
    (trackpipe.events.orgs.package_name), so a listed org always has a package folder."""
    if not isinstance(name, str) or package_name(name) is None:
        raise ConfigError(
            f"org config key '{key}': {name!r} is not a valid org name (ASCII letters, digits, _ - . ~, "
            f"starting with a letter or digit, no '..', at most {MAX_ORG_CHARS} characters)"
        )


def _resolve_keys(config_path: str, keys: tuple[str, ...]) -> tuple[str, ...]:
    """Key files are given relative to the org config; fingerprints stay as they are."""
    base = os.path.dirname(os.path.abspath(config_path))
    resolved = []
    for key in keys:
        looks_like_file = "/" in key or key.endswith((".asc", ".gpg", ".pub", ".key"))
        resolved.append(os.path.join(base, key) if looks_like_file and not os.path.isabs(key) else key)
    return tuple(resolved)
