"""Shared pytest fixtures. Service fixtures (S3, PostgreSQL, GnuPG) live in tests/services.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import REAL_EVENTS


@pytest.fixture
def real_logs(tmp_path: Path) -> Path:
    """The real tracking-log samples (one JSON per line) as a folder of log files."""
    folder = tmp_path / "logs"
    folder.mkdir()
    for path in sorted((REAL_EVENTS / "edx-analytics-pipeline").glob("*.log")):
        shutil.copy(path, folder / path.name)
    shutil.copy(REAL_EVENTS / "event-routing-backends" / "tracking-log" / "tracking.log", folder / "tutor-tracking.log")
    return folder


from tests.engine_services import *  # noqa: E402,F401,F403 - the Flink cluster and Prism
from tests.gcs_services import *  # noqa: E402,F401,F403 - the GCS server
from tests.services import *  # noqa: E402,F401,F403 - s3_server, s3_bucket, postgres_server, pg_url, gpg_keys
