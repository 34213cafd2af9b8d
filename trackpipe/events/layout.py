"""The output's layout: every folder and file name trackpipe writes, in one place. No Beam here.

```
OUT/warehouse/<stream>/dt=<YYYY-MM-DD>/part-<file digest>-<chunk>.parquet|.avro
OUT/duplicates/dt=<YYYY-MM-DD>/part-<file digest>-<chunk>.parquet
OUT/rejects/part-<file digest>-<chunk>.jsonl.gz
OUT/research_package/<org>/<site>/events/<YYYY>/<org>-<site>-events-<YYYY-MM-DD>.log.gz[.gpg]
OUT/research_package/<org>/<site>/events/<YYYY>/MANIFEST-<YYYY-MM-DD>.json
OUT/_manifest.json, OUT/_runs/<run>.json, OUT/_lock.json, OUT/_tmp/<run>/
```

Names are built only from dates, digests, numbers, the configured site and the safe form of an
org (trackpipe.events.orgs.package_name), never from event text as it is. Names starting with
`_` are trackpipe's own; Hive-style readers skip them.
"""

from __future__ import annotations

WAREHOUSE_DIR = "warehouse"
DUPLICATES_DIR = "duplicates"
REJECTS_DIR = "rejects"
PACKAGE_DIR = "research_package"
MANIFEST_NAME = "_manifest.json"
RUNS_DIR = "_runs"
TMP_DIR = "_tmp"
LOCK_NAME = "_lock.json"
RETIREMENTS_DIR = "_retirements"  # one JSON file per `trackpipe forget` that changed something
EXPIRATIONS_NAME = "_expirations.jsonl"  # one JSON line per `trackpipe expire` that removed something

EXTENSIONS = {"parquet": ".parquet", "avro": ".avro"}


def partition_dir(date: str) -> str:
    """`dt=2026-11-02`: the Hive-style folder of one day."""
    return f"dt={date}"


def part_file(file_id: str, fmt: str) -> str:
    """A warehouse or duplicates file of one chunk: `part-<file digest>-<chunk>.parquet`."""
    return f"part-{file_id}{EXTENSIONS[fmt]}"


def rejects_file(file_id: str) -> str:
    return f"part-{file_id}.jsonl.gz"


def package_folder(package: str, site: str, date: str) -> str:
    """Folder of a package file, relative to the output: `research_package/{org}/{site}/events/{YYYY}`."""
    return "/".join([PACKAGE_DIR, package, site, "events", date[:4]])


def package_file_name(package: str, site: str, date: str, encrypted: bool) -> str:
    return f"{package}-{site}-events-{date}.log.gz" + (".gpg" if encrypted else "")


def package_manifest_name(date: str) -> str:
    return f"MANIFEST-{date}.json"
