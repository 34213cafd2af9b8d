"""Files on local disk or in an object store, behind one small set of functions.

- Local paths use the OS directly (fast; directory renames are atomic).
- `s3://` and `gs://` use trackpipe.storage.object_stores: pyarrow's filesystems, one per
  process, with the settings of trackpipe.storage.s3_settings (Beam's S3 options or the AWS
  variables) and trackpipe.storage.gcs_settings (the Google variables).
- Any other URL goes through Beam's FileSystems, so whatever else Beam can read works too.
Object stores have no folders and no rename: "folders" are key prefixes, and moving means
copying then deleting (see trackpipe.storage.journal for how partitions are still replaced whole).
"""

from __future__ import annotations

import errno
import glob
import hashlib
import os
import shutil
from typing import BinaryIO

from trackpipe.errors import TrackpipeError, UnsafePathError
from trackpipe.storage import object_stores


def is_remote(path: str) -> bool:
    return "://" in path


def _in_object_store(path: str) -> bool:
    """S3 or Cloud Storage, served by trackpipe.storage.object_stores."""
    return object_stores.is_object_store(path)


def join(base: str, *parts: str) -> str:
    if is_remote(base):
        return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])
    return os.path.join(base, *parts)


def safe_component(name: str) -> bool:
    """A single, ordinary path component: not empty, not `.` or `..`, no separator, no NUL or
    other control character, at most 255 bytes (every file system's limit)."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\\" not in name
        and name.isprintable()
        and len(name.encode("utf-8", "surrogatepass")) <= 255
    )


def join_inside(root: str, *parts: str) -> str:
    """`root` joined with `parts`, refusing anything that could leave `root`: every part must
    be a safe component, and the result must lie under `root` (local paths: after
    normalisation; object-store keys: segment by segment). The second line of defence behind
    the rules that make names from data safe in the first place."""
    for part in parts:
        if not safe_component(part):
            raise UnsafePathError(f"refusing to write under {root}: {part!r} is not a plain file or folder name")
    path = join(root, *parts)
    check_inside(path, root)
    return path


def check_inside(path: str, root: str) -> str:
    """Raise UnsafePathError unless `path` lies strictly inside `root`; return `path`."""
    if is_remote(root) != is_remote(path):
        raise UnsafePathError(f"refusing to write {path!r}: outside {root}")
    if is_remote(root):
        base = root.rstrip("/") + "/"
        rest = path[len(base) :] if path.startswith(base) else None
        if rest is None or any(seg in ("", ".", "..") for seg in rest.split("/")):
            raise UnsafePathError(f"refusing to write {path!r}: outside {root}")
        return path
    base = os.path.normpath(os.path.abspath(root))
    full = os.path.normpath(os.path.abspath(path))
    if "\x00" in path or os.path.commonpath([base, full]) != base or full == base:
        raise UnsafePathError(f"refusing to write {path!r}: outside {root}")
    return path


def check_buckets(urls) -> None:
    """Fail with one clear line unless the bucket of every object-store URL among `urls` exists,
    its endpoint answers and the credentials work (local paths are skipped). Callers run it
    before writing anything."""
    object_stores.check_buckets(urls)


def _fs():
    from apache_beam.io.filesystems import FileSystems

    return FileSystems


def _beam_errors(call, path, *args):
    try:
        return call(*args)
    except Exception as exc:  # noqa: BLE001 - Beam wraps every backend error in BeamIOError
        raise TrackpipeError(f"cannot access {path}: {_reason(exc)}") from None


def open_read(path: str) -> BinaryIO:
    """A binary stream of the file's bytes as stored (no decompression)."""
    if not is_remote(path):
        return open(path, "rb")
    if _in_object_store(path):
        return object_stores.open_read(path)
    from apache_beam.io.filesystem import CompressionTypes

    return _beam_errors(_fs().open, path, path, "application/octet-stream", CompressionTypes.UNCOMPRESSED)


def open_write(path: str) -> BinaryIO:
    """A binary stream that creates (or replaces) the file when closed; parents are created."""
    if not is_remote(path):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        return open(path, "wb")
    if _in_object_store(path):
        return object_stores.open_write(path)
    from apache_beam.io.filesystem import CompressionTypes

    return _beam_errors(_fs().create, path, path, "application/octet-stream", CompressionTypes.UNCOMPRESSED)


def read_bytes(path: str) -> bytes:
    with open_read(path) as handle:
        chunks = []
        while True:
            # Read in a loop: some streams return at most one buffer per read().
            block = handle.read(16 * 1024 * 1024)
            if not block:
                return b"".join(chunks)
            chunks.append(block)


def write_bytes(path: str, data: bytes) -> None:
    with open_write(path) as handle:
        handle.write(data)


def write_atomic(path: str, data: bytes) -> None:
    """Write a small file so readers see the old or the new content, never a part (local:
    temp file + rename; object stores replace an object atomically on their own)."""
    if is_remote(path):
        write_bytes(path, data)
        return
    tmp = f"{path}.tmp-{os.getpid()}"
    write_bytes(tmp, data)
    os.replace(tmp, path)


def exists(path: str) -> bool:
    """A file, or a folder (a key prefix with objects under it)."""
    if not is_remote(path):
        return os.path.exists(path)
    if _in_object_store(path):
        return object_stores.exists(path)
    return _beam_errors(_fs().exists, path, path) or bool(list_files(path))


def list_files(prefix: str) -> list[str]:
    """Every file under a folder (recursively), sorted; [] when there is none."""
    if not is_remote(prefix):
        found = []
        for root, _dirs, files in os.walk(prefix):
            found.extend(os.path.join(root, name) for name in files)
        return sorted(found)
    base = prefix.rstrip("/") + "/"
    if _in_object_store(prefix):
        return [url for url, _size in object_stores.list_files(base)]
    result = _beam_errors(_fs().match, prefix, [base + "**"])[0]
    return sorted(m.path for m in result.metadata_list)


def file_sizes(prefix: str) -> dict[str, int]:
    """Every file under a folder (recursively) with its size in bytes; {} when there is none."""
    if not is_remote(prefix):
        return {path: os.path.getsize(path) for path in list_files(prefix)}
    base = prefix.rstrip("/") + "/"
    if _in_object_store(prefix):
        return dict(object_stores.list_files(base))
    result = _beam_errors(_fs().match, prefix, [base + "**"])[0]
    return {m.path: m.size_in_bytes for m in result.metadata_list}


def match(pattern: str) -> list[tuple[str, int]]:
    """Files matching a glob (`*`, `?`, `[..]`, and `**` across folders) as (path, size), sorted.
    A pattern without wildcards matches that one file."""
    if not is_remote(pattern):
        paths = glob.glob(pattern, recursive=True)
        return sorted((p, os.path.getsize(p)) for p in paths if os.path.isfile(p))
    if _in_object_store(pattern):
        return object_stores.match(pattern)
    result = _beam_errors(_fs().match, pattern, [pattern])[0]
    return sorted((m.path, m.size_in_bytes) for m in result.metadata_list)


def delete_files(paths: list[str]) -> None:
    """Delete files; missing ones are fine."""
    paths = sorted(set(paths))
    if not paths:
        return
    if not is_remote(paths[0]):
        for path in paths:
            delete_file(path)
    elif _in_object_store(paths[0]):
        object_stores.delete_files(paths)
    else:
        _beam_errors(_fs().delete, paths[0], paths)


def delete_tree(path: str) -> None:
    """Remove a file or folder and everything under it; a missing path is fine."""
    if not is_remote(path):
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=False)
        elif os.path.lexists(path):
            os.remove(path)
        return
    files = list_files(path)
    if exists(path) and path not in files and not files:
        files.append(path)
    delete_files(files)


def delete_file(path: str) -> None:
    if not is_remote(path):
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        return
    if _in_object_store(path):
        delete_files([path])  # deleting a missing object is fine there: no look first
    elif exists(path):
        delete_files([path])


def copy_file(src: str, dst: str) -> None:
    """Copy one file (server-side within one object store)."""
    if not is_remote(src) and not is_remote(dst):
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(src, dst)
    elif _in_object_store(src) and src.split("://")[0] == dst.split("://")[0]:
        object_stores.copy(src, dst)
    elif is_remote(src) and src.split("://")[0] == dst.split("://")[0]:
        _beam_errors(_fs().copy, src, [src], [dst])
    else:
        with open_read(src) as source, open_write(dst) as sink:
            shutil.copyfileobj(source, sink, 8 * 1024 * 1024)


def move_file(src: str, dst: str) -> None:
    if not is_remote(src) and not is_remote(dst):
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        os.replace(src, dst)
        return
    copy_file(src, dst)
    delete_files([src])


def open_arrow_input(path: str, stream: bool = False):
    """A seekable Arrow input for IPC files. Local files are memory-mapped, or read with plain
    reads (`stream`: pages do not stay mapped, so memory holds only what is being used); remote
    files are fetched whole (`stream`, one request) or by ranges as Arrow asks for them."""
    import pyarrow as pa

    if not is_remote(path):
        return pa.OSFile(path, "r") if stream else pa.memory_map(path, "r")
    if stream:
        return pa.BufferReader(read_bytes(path))
    if _in_object_store(path):
        return object_stores.open_arrow_input(path)
    return pa.PythonFile(open_read(path), mode="r")


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


def local_file_digest(path: str) -> tuple[str, int]:
    """SHA-256 (hex) and size of a local file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size
