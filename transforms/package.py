"""Research data packages: per org and arrival day, the org's raw events in edX's layout.

`research_package/{org}/{site}/events/{YYYY}/{org}-{site}-events-{YYYY-MM-DD}.log.gz[.gpg]`
plus `MANIFEST-{YYYY-MM-DD}.json` beside it. The writer stages, per chunk, the package rows
sorted by (received_at, time, event_id); here the sorted fragments of one (org, day) are
merged as streams (memory stays bounded by a few batches per fragment, not by the org's day),
gzipped deterministically, and encrypted with gpg when the org has recipients.
"""

from __future__ import annotations

import heapq
import json
import os
import tempfile

import apache_beam as beam
import numpy as np
import pyarrow as pa

from trackpipe import __version__, storage
from trackpipe.config import Config, KeySource
from trackpipe.errors import ConfigError
from trackpipe.events.layout import package_file_name, package_folder, package_manifest_name
from trackpipe.events.partitions import package_order
from trackpipe.events.pseudonyms import Pseudonymiser
from trackpipe.gpg import Encryptor, PackageKeys
from trackpipe.storage.formats import GzipWriter
from trackpipe.storage.workdir import WorkDir
from transforms.stats import count

# An (org, day) with at most this many events is sorted by its keys in memory (vectorised, fast;
# about 50 bytes per event); a larger one is merged as streams from its sorted fragments.
IN_MEMORY_ROWS = 5_000_000
WRITE_SLICE_ROWS = 32_768


def _read_fragments(fragments) -> pa.Table:
    tables = []
    for path, first, batches, _rows in fragments:
        with storage.open_arrow_input(path) as source:
            reader = pa.ipc.open_file(source)
            tables.append(pa.Table.from_batches([reader.get_batch(i) for i in range(first, first + batches)]))
    return pa.concat_tables(tables)


def _write_sorted_in_memory(fragments, gz: GzipWriter) -> int:
    """Sort the org-day by its keys, then write the raw lines in that order a slice at a time.

    The fragments are memory-mapped and concatenated without copying; only the sort keys
    (about 50 bytes per event) and one slice of lines are in memory at once."""
    rows = _read_fragments(fragments)
    order = package_order(rows)
    raw_column = rows.column("raw")
    for start in range(0, len(order), WRITE_SLICE_ROWS):
        raw = raw_column.take(pa.array(order[start : start + WRITE_SLICE_ROWS])).combine_chunks()
        gz.write(_lines(raw))
    return len(order)


def _lines(raw: pa.Array) -> bytes:
    """The values of a binary array, each followed by a newline, as one bytes object."""
    if raw.type != pa.binary():
        raw = raw.cast(pa.binary())
    offsets = np.frombuffer(raw.buffers()[1], dtype=np.int32, count=len(raw) + 1, offset=raw.offset * 4)
    data = np.frombuffer(raw.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    return np.insert(data, offsets[1:] - offsets[0], 10).tobytes()


def _write_merged_streams(fragments, gz: GzipWriter) -> int:
    """k-way merge of the sorted fragments, a few batches in memory at a time."""
    events = 0
    buffer = []
    for _recv, _time, _eid, raw in heapq.merge(*(_rows(*frag[:3]) for frag in fragments)):
        buffer.append(raw)
        events += 1
        if len(buffer) >= 4096:
            gz.write(b"\n".join(buffer) + b"\n")
            buffer = []
    if buffer:
        gz.write(b"\n".join(buffer) + b"\n")
    return events


def _rows(path: str, first: int, batches: int):
    """(received_at, time, event_id, raw) of a fragment's batches, in their (sorted) order."""
    with storage.open_arrow_input(path) as source:
        reader = pa.ipc.open_file(source)
        for index in range(first, first + batches):
            batch = reader.get_batch(index)
            yield from zip(
                batch.column(2).to_pylist(),  # received_at
                batch.column(3).to_pylist(),  # time
                batch.column(4).to_pylist(),  # event_id
                batch.column(5).to_pylist(),  # raw
            )


class MergePackageFn(beam.DoFn):
    """((package, date), [(fragment path, first batch, batches, rows)]) -> the package file and its
    manifest in the work folder; yields statistics describing the file."""

    def __init__(self, site: str, workdir: WorkDir, keys: PackageKeys, config: Config | None = None, key_source: KeySource | None = None):
        self._site = site
        self._workdir = workdir
        self._keys = keys
        self._config = config or Config()
        self._key_source = key_source
        self._encryptor = None
        self._key = None

    def setup(self):
        self._workdir.activate()
        if self._keys.armored:
            self._encryptor = Encryptor(self._keys.armored)
        if self._config.any_pseudonymised():
            try:
                self._key = (self._key_source or KeySource()).load()  # read here, never shipped with the pipeline
            except ConfigError as exc:
                self._workdir.fail(str(exc))

    def teardown(self):
        if self._encryptor is not None:
            self._encryptor.close()

    def process(self, element):
        (package, date), fragments = element
        fragments = sorted(fragments)
        recipients = self._keys.for_package(package)
        folder = package_folder(package, self._site, date)
        name = package_file_name(package, self._site, date, bool(recipients))
        with tempfile.TemporaryDirectory(prefix="tp-pkg-") as tmp:
            plain = os.path.join(tmp, "package.log.gz")
            with open(plain, "wb") as sink:
                gz = GzipWriter(sink)
                if self._config.pseudonymised(package):
                    gz = _PseudonymisingWriter(gz, Pseudonymiser(self._key, package))
                if sum(rows for *_, rows in fragments) <= IN_MEMORY_ROWS:
                    events = _write_sorted_in_memory(fragments, gz)
                else:
                    events = _write_merged_streams(fragments, gz)
                gz.close()
            final = plain
            if recipients:
                final = os.path.join(tmp, "package.log.gz.gpg")
                self._encryptor.encrypt(plain, final, recipients)
            digest, size = storage.local_file_digest(final)
            target = self._workdir.path(*folder.split("/"), name)
            self._workdir.guard(target, _copy_out, final, target)
        entry = {"name": name, "events": events, "bytes": size, "sha256": digest}
        manifest = {
            "org": package,
            "site": self._site,
            "date": date,
            "files": [entry],
            "encrypted_for": list(recipients),
            "content": _content(recipients, self._config.pseudonymised(package)),
            "order": ["received_at", "time", "event_id"],
            "produced_by": f"trackpipe {__version__}",
        }
        manifest_path = self._workdir.path(*folder.split("/"), package_manifest_name(date))
        data = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
        self._workdir.guard(manifest_path, storage.write_bytes, manifest_path, data)
        count("package_files", 1)
        count("package_events", events)
        yield {
            "packages": {
                f"{folder}/{name}": {
                    "org": package,
                    "date": date,
                    "events": events,
                    "bytes": size,
                    "sha256": digest,
                    "encrypted": bool(recipients),
                }
            }
        }


def _content(recipients, pseudonymised: bool) -> str:
    lines = (
        "the JSON object re-serialised with usernames and user ids as keyed pseudonyms and no ip"
        if pseudonymised
        else "the JSON object as logged"
    )
    return f"one event per line, {lines}; gzip" + (", then OpenPGP-encrypted" if recipients else "")


class _PseudonymisingWriter:
    """Rewrites each line (newline-terminated, as the package writers hand them over) before
    gzipping it."""

    def __init__(self, gz: GzipWriter, pseudonymiser: Pseudonymiser):
        self._gz, self._pseudonymiser = gz, pseudonymiser

    def write(self, data: bytes) -> None:
        lines = data.split(b"\n")
        tail = lines.pop()  # b"" after the last newline
        self._gz.write(b"".join(self._pseudonymiser.line(line) + b"\n" for line in lines) + tail)

    def close(self) -> None:
        self._gz.close()


def _copy_out(local: str, target: str) -> None:
    with open(local, "rb") as src, storage.open_write(target) as dst:
        while block := src.read(8 << 20):
            dst.write(block)


class BuildResearchPackages(beam.PTransform):
    """((package, date), fragment) -> statistics of the package files written."""

    def __init__(self, site: str, workdir: WorkDir, keys: PackageKeys, config: Config | None = None, key_source: KeySource | None = None):
        super().__init__()
        self._fn = MergePackageFn(site, workdir, keys, config, key_source)

    def expand(self, fragments):
        return fragments | "GroupByPackageDay" >> beam.GroupByKey() | "MergeAndSeal" >> beam.ParDo(self._fn)
