"""The corpus's files: each instance's rotated log of a day, in edX's S3 layout
``logs/tracking/<server group>/<instance>/tracking.log-YYYYMMDD-<rotation epoch>.gz``, its lines
in arrival order, gzipped in one pass with isal (zlib's gzip as fallback) with mtime 0 and no
file name in the header, so that the same arguments give the same bytes; and the list of files
with their line and byte counts, for expected.json.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

try:  # isal is ~4x faster than zlib at gzip; the output is a standard gzip member either way
    from isal import igzip as _igzip
except ImportError:  # pragma: no cover - isal is a pinned runtime dependency
    _igzip = None
import gzip as _gzip

if TYPE_CHECKING:
    from trackpipe.generator.generate import CorpusGenerator

GROUP_LMS, GROUP_WORKER, GROUP_CMS = "prod-edx-edxapp-lms", "prod-edx-worker", "prod-edx-edxapp-cms"


class LogFiles:
    """Writes the log files and keeps their list."""

    def __init__(self, gen: CorpusGenerator):
        self.rnd, self.accidents = gen.rnd, gen.noise.accidents
        self.start, self.start_day, self.rot = gen.start, gen.start_day, gen.clock.rot
        self.instances, self.cms_instance = gen.instances, gen.cms_instance
        self.plain_instance = 0 if gen.shape == "production" else None  # its files are plain text
        self.files_meta = []
        self.lines_read = 0

    def _name(self, d: int, rot: int) -> str:
        """The file name of a log rotated `rot` seconds after the midnight that ends day d."""
        return f"tracking.log-{(self.start + timedelta(days=d + 1)).strftime('%Y%m%d')}-{(self.start_day + d + 1) * 86400 + rot}.gz"

    def write(self, d: int, inst: int, keys: list[int], lines: list[str], out: Path) -> None:
        """Write instance inst's file of day d: `lines` sorted by `keys` (their arrivals)."""
        order = sorted(range(len(lines)), key=keys.__getitem__)
        unsorted, lines = lines, [lines[i] for i in order]
        unsorted.clear()
        newline_at_end = self.accidents(lines)
        nlines = len(lines)
        parts = [ln.encode("utf-8", "surrogateescape") for ln in lines]
        lines.clear()
        if newline_at_end and nlines:
            parts.append(b"")
        data = b"\n".join(parts)
        group, iid = self.instances[inst]
        name = self._name(d, self.rot[inst][d])
        del parts
        plain = inst == self.plain_instance
        self._write_gz(out, f"logs/tracking/{group}/{iid}/{name.removesuffix('.gz') if plain else name}", data, nlines, plain)

    def _write_gz(self, out: Path, rel: str, data: bytes, nlines: int, plain: bool = False) -> None:
        """Write `data` gzipped (or as it is) to out/rel (through a temporary file), and list the file."""
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = data if plain else _gzip_bytes(data)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, path)
        self.files_meta.append({"path": rel, "lines": nlines, "bytes": len(blob)})
        self.lines_read += nlines

    def write_empty(self, out: Path) -> None:
        """A Studio instance that logged nothing that day: an empty file."""
        group, iid = self.cms_instance
        self._write_gz(out, f"logs/tracking/{group}/{iid}/{self._name(0, self.rnd.randrange(240, 840))}", b"", 0)


def _gzip_bytes(data: bytes) -> bytes:
    if _igzip is not None:
        return _igzip.compress(data, compresslevel=2, mtime=0)  # level 3 is 2x slower for 5%
    return _gzip.compress(data, compresslevel=6, mtime=0)  # pragma: no cover
