"""Tier 1: the config is checked at start and configs/default.yaml documents the defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from trackpipe.config import Config, load_config, load_orgs
from trackpipe.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_default_yaml_equals_the_built_in_defaults():
    from_file = load_config(str(ROOT / "configs" / "default.yaml"))
    assert from_file == Config()


def test_every_key_of_the_config_is_in_default_yaml():
    documented = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    defaults = Config().to_dict()
    defaults.pop("orgs")
    assert set(documented) == set(defaults)
    for section in ("dedup", "read", "output", "warehouse", "retention", "privacy"):
        assert set(documented[section]) == set(defaults[section])


def _write(tmp_path, text: str) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("sitee: edx", "unknown config key 'sitee'"),
        ("dedup: {windw_seconds: 3}", "unknown config key 'dedup.windw_seconds'"),
        ("dedup: {window_seconds: soon}", "'dedup.window_seconds' must be a number"),
        ("dedup: {window_seconds: -1}", "'dedup.window_seconds' must be between 0 and 86400"),
        ("internal_prefixes: edx.bi.", "'internal_prefixes' must be a list"),
        ("max_reject_ratio: 2", "'max_reject_ratio' must be between 0 and 1"),
        ("format: csv", "'format' must be 'parquet' or 'avro'"),
        ("site: 'My Site'", "'site' must be a short lower-case name"),
        ("read: {chunk_lines: 0}", "'read.chunk_lines' must be positive"),
        ("read: {chunk_lines: true}", "'read.chunk_lines' must be an integer"),
        ("warehouse: {research_table: 'x; drop table y'}", "'warehouse.research_table' must be a plain SQL identifier"),
        ("dedup: [1, 2]", "'dedup' must be a mapping"),
        ("site: [", "is not valid YAML"),
    ],
)
def test_config_errors_name_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        load_config(_write(tmp_path, text))


def test_missing_config_file():
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("/nonexistent/trackpipe.yaml")


def test_overrides_and_integers_for_floats(tmp_path):
    config = load_config(_write(tmp_path, "dedup: {window_seconds: 3}\nsite: edge"), {"format": "avro", "site": None})
    assert config.dedup.window_seconds == 3.0 and config.site == "edge" and config.format == "avro"


def test_org_config(tmp_path):
    (tmp_path / "keys").mkdir()
    orgs_path = tmp_path / "orgs.yaml"
    orgs_path.write_text(
        "master_recipients: [keys/master.asc]\n"
        "exclude_hosts: ['studio\\.example\\.org']\n"
        "orgs:\n"
        "  MITx: {other_names: [MITxPRO, Shared], recipients: [keys/mitx.asc, 0123456789ABCDEF0123456789ABCDEF01234567]}\n"
        "  HarvardX: {other_names: [shared]}\n"
    )
    config = load_config(_write(tmp_path, f"orgs_file: {orgs_path.name}"))
    orgs = config.orgs
    assert orgs.package_names("mitxpro") == ("mitx",)
    assert orgs.package_names("SHARED") == ("harvardx", "mitx")
    assert orgs.package_names("DelftX") == ()
    assert orgs.recipients_for("mitx") == (
        str(tmp_path / "keys/mitx.asc"),
        "0123456789ABCDEF0123456789ABCDEF01234567",
        str(tmp_path / "keys/master.asc"),
    )
    assert orgs.recipients_for("harvardx") == (str(tmp_path / "keys/master.asc"),)
    assert orgs.host_excluded("Studio.Example.org") and not orgs.host_excluded("courses.example.org")


def test_the_empty_host_pattern_matches_the_empty_host_only(tmp_path):
    path = tmp_path / "orgs.yaml"
    path.write_text("exclude_hosts: ['studio\\.example\\.org', '']\n")
    orgs = load_orgs(str(path))
    assert orgs.host_excluded("") and orgs.host_excluded("studio.example.org")
    assert not orgs.host_excluded(None) and not orgs.host_excluded("courses.example.org")


@pytest.mark.parametrize(
    "text, message",
    [
        ("exclude_hosts: ['studio[']", "bad regular expression"),
        ("master_recipients: ['']", "must be a list of non-empty strings"),
        ("orgs: {MITx: {aliases: [x]}}", "unknown config key 'orgs.MITx.aliases'"),
        ("orgz: {}", "unknown config key 'orgz'"),
        ("orgs: [MITx]", "must map org names"),
    ],
)
def test_org_config_errors(tmp_path, text, message):
    path = tmp_path / "orgs.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_orgs(str(path))


def test_example_org_config_loads():
    orgs = load_orgs(str(ROOT / "configs" / "orgs.example.yaml"))
    assert orgs.package_names("mitxpro") == ("mitx",)
