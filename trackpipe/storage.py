"""Files on local disk or in an object store (s3://, gs://), behind one small set of functions.

Local paths use the OS directly (fast, and directory renames are atomic); URLs go through Beam's
FileSystems, so whatever Beam can read (S3 with the AWS extra, GCS on Dataflow) works here, with
the S3 endpoint and credentials set once (trackpipe.s3settings). No pipeline is needed.
"""
from __future__ import annotations

import errno
import glob
import io
import os
import shutil
from typing import BinaryIO

from trackpipe.errors import TrackpipeError


def is_remote(path: str) -> bool:
    return "://" in path


def join(base: str, *parts: str) -> str:
    if is_remote(base):
        return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])
    return os.path.join(base, *parts)


def _fs():
    from apache_beam.io.filesystems import FileSystems

    return FileSystems


def open_read(path: str) -> BinaryIO:
    """A binary stream of the file's bytes as stored (no decompression)."""
    if not is_remote(path):
        return open(path, "rb")
    from apache_beam.io.filesystem import CompressionTypes

    return _fs().open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def open_write(path: str) -> BinaryIO:
    """A binary stream that creates (or replaces) the file; parent folders are created."""
    if not is_remote(path):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        return open(path, "wb")
    from apache_beam.io.filesystem import CompressionTypes

    return _fs().create(path, compression_type=CompressionTypes.UNCOMPRESSED)


def read_bytes(path: str) -> bytes:
    with open_read(path) as handle:
        chunks = []
        while True:
            # Read in a loop: some Beam streams return at most one buffer per read().
            block = handle.read(16 * 1024 * 1024)
            if not block:
                return b"".join(chunks)
            chunks.append(block)


def write_bytes(path: str, data: bytes) -> None:
    with open_write(path) as handle:
        handle.write(data)


def write_atomic(path: str, data: bytes) -> None:
    """Write a small file so readers see the old or the new content, never a part (local:
    temp file + rename; object stores replace a key atomically on their own)."""
    if is_remote(path):
        write_bytes(path, data)
        return
    tmp = f"{path}.tmp-{os.getpid()}"
    write_bytes(tmp, data)
    os.replace(tmp, path)


def exists(path: str) -> bool:
    if not is_remote(path):
        return os.path.exists(path)
    return _fs().exists(path) or bool(list_files(path))


def list_files(prefix: str) -> list[str]:
    """Every file under a folder (recursively), sorted."""
    if not is_remote(prefix):
        found = []
        for root, _dirs, files in os.walk(prefix):
            found.extend(os.path.join(root, name) for name in files)
        return sorted(found)
    base = prefix.rstrip("/") + "/"
    result = _fs().match([base + "**"])[0]
    return sorted(m.path for m in result.metadata_list)


def match(pattern: str) -> list[tuple[str, int]]:
    """Files matching a glob (`*`, `?`, `[..]`, and `**` across folders) as (path, size), sorted.
    A pattern without wildcards matches that one file."""
    if not is_remote(pattern):
        paths = glob.glob(pattern, recursive=True)
        return sorted((p, os.path.getsize(p)) for p in paths if os.path.isfile(p))
    try:
        result = _fs().match([pattern])[0]
    except Exception as exc:  # noqa: BLE001 - Beam wraps every backend error in BeamIOError
        raise TrackpipeError(f"cannot list {pattern}: {_reason(exc)}") from None
    return sorted((m.path, m.size_in_bytes) for m in result.metadata_list)


def delete_tree(path: str) -> None:
    """Remove a file or folder and everything under it; a missing path is fine."""
    if not is_remote(path):
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=False)
        elif os.path.lexists(path):
            os.remove(path)
        return
    files = list_files(path)
    if _fs().exists(path):
        files.append(path)
    if files:
        _fs().delete(sorted(set(files)))


def delete_file(path: str) -> None:
    if not is_remote(path):
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        return
    if _fs().exists(path):
        _fs().delete([path])


def move_tree(src: str, dst: str) -> None:
    """Move a folder to a path that does not exist (local: one atomic rename)."""
    if not is_remote(src):
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        os.rename(src, dst)
        return
    files = list_files(src)
    rel = [f[len(src.rstrip("/")) + 1 :] for f in files]
    _fs().copy(files, [join(dst, r) for r in rel])
    _fs().delete(files)


def move_file(src: str, dst: str) -> None:
    if not is_remote(src):
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        os.replace(src, dst)
        return
    _fs().copy([src], [dst])
    _fs().delete([src])


def open_arrow_input(path: str):
    """A seekable Arrow input for reading IPC/Parquet files (memory-mapped when local)."""
    import pyarrow as pa

    if not is_remote(path):
        return pa.memory_map(path, "r")
    return pa.BufferReader(read_bytes(path))


def write_arrow(path: str, write_fn) -> None:
    """Call `write_fn(sink)` with an Arrow output stream for `path`."""
    import pyarrow as pa

    if not is_remote(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with pa.OSFile(path, "wb") as sink:
            write_fn(sink)
        return
    buffer = io.BytesIO()
    write_fn(pa.PythonFile(buffer, mode="w"))
    write_bytes(path, buffer.getvalue())


def _reason(exc: BaseException) -> str:
    text = str(exc)
    for marker in ("An error occurred", "Could not connect", "NoSuchBucket", "AccessDenied", "InvalidAccessKeyId"):
        pos = text.find(marker)
        if pos >= 0:
            return text[pos:].split("\n")[0][:300]
    return text.split("\n")[0][:300]


def disk_error_message(exc: OSError, path: str) -> str:
    """A one-line message for the output errors operators meet: disk full, no permission."""
    if exc.errno == errno.ENOSPC:
        return f"no space left on the device while writing {path}"
    if exc.errno == errno.EROFS:
        return f"the output is on a read-only file system: cannot write {path}"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied writing {path}"
    return f"cannot write {path}: {exc.strerror or exc}"
