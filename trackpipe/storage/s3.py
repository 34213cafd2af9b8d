"""S3 objects through one cached boto3 client per process (the storage backend for s3://).

Beam's S3 filesystem builds a new boto3 session and client, loading botocore's JSON models,
for every single operation; with the many small objects of a run (chunks, partition files,
package files) that cost more than the work itself (a 20k-event run: 31 s, a third of it in
botocore's JSON loader). Here one client per process serves every call, with the settings of
trackpipe.storage.s3_settings, which are the same ones Beam's own S3 options carry to workers.

Reads stream (a large object is never read whole unless asked) and can seek with ranged GETs,
so Arrow can fetch single record batches; writes spool to a temporary file and upload on close
(multipart for large files). Botocore errors become one-line TrackpipeErrors naming the URL.
"""

from __future__ import annotations

import fnmatch
import functools
import io
import re
import tempfile
import threading

from trackpipe.errors import TrackpipeError
from trackpipe.storage.s3_settings import bucket_and_key, explain, settings

_lock = threading.Lock()
_clients: dict = {}


def client():
    """The process's boto3 client for the current settings."""
    current = settings()
    with _lock:
        found = _clients.get(current)
        if found is None:
            found = _clients[current] = current.client()
        return found


def _clean_errors(func):
    @functools.wraps(func)
    def wrapper(url, *args, **kwargs):
        try:
            return func(url, *args, **kwargs)
        except TrackpipeError:
            raise
        except Exception as exc:  # noqa: BLE001 - botocore raises many types; all become one line
            if exc.__class__.__module__.startswith(("botocore", "boto3", "urllib3")):
                raise TrackpipeError(explain(exc, url)) from None
            raise

    return wrapper


class RangeReader(io.RawIOBase):
    """A seekable, read-only view of an S3 object, fetched by ranged GETs."""

    def __init__(self, url: str):
        self._bucket, self._key = bucket_and_key(url)
        self._url = url
        self._size = None
        self._pos = 0
        self._stream = None  # an open GET body from _stream_pos on, reused for sequential reads
        self._stream_pos = 0

    def _length(self) -> int:
        if self._size is None:
            self._size = _head(self._url)["ContentLength"]
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._pos = offset
        elif whence == io.SEEK_CUR:
            self._pos += offset
        else:
            self._pos = self._length() + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer) -> int:
        if self._size is not None and self._pos >= self._size:
            return 0
        if self._stream is None or self._stream_pos != self._pos:
            self._close_stream()
            response = _get(self._url, f"bytes={self._pos}-")
            if response is None:
                self._size = self._pos
                return 0
            self._stream = response["Body"]
            self._stream_pos = self._pos
        data = self._stream.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self._pos += n
        self._stream_pos += n
        if n == 0:
            self._size = self._pos
            self._close_stream()
        return n

    def _close_stream(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def close(self) -> None:
        self._close_stream()
        super().close()


@_clean_errors
def _head(url: str) -> dict:
    bucket, key = bucket_and_key(url)
    return client().head_object(Bucket=bucket, Key=key)


@_clean_errors
def _get(url: str, byte_range: str):
    from botocore.exceptions import ClientError

    bucket, key = bucket_and_key(url)
    try:
        return client().get_object(Bucket=bucket, Key=key, Range=byte_range)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "InvalidRange":
            return None  # reading at the end of the object
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise FileNotFoundError(url) from None
        raise


def open_read(url: str, buffer_size: int = 8 * 1024 * 1024):
    _head(url)  # a missing object fails here, as FileNotFoundError or one clear line
    return io.BufferedReader(RangeReader(url), buffer_size=buffer_size)


class _Writer(io.RawIOBase):
    """Spools to a temporary file; uploads when closed (multipart above 8 MB)."""

    def __init__(self, url: str):
        self._url = url
        self._spool = tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024)

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        return self._spool.write(data)

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._spool.seek(0)
            _upload(self._url, self._spool)
        finally:
            self._spool.close()
            super().close()


@_clean_errors
def _upload(url: str, fileobj) -> None:
    bucket, key = bucket_and_key(url)
    client().upload_fileobj(fileobj, bucket, key)


def open_write(url: str):
    return _Writer(url)


@_clean_errors
def list_files(prefix_url: str) -> list[tuple[str, int]]:
    """(url, size) of every object whose key starts with the URL's key, sorted."""
    bucket, prefix = bucket_and_key(prefix_url)
    found = []
    for page in client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            found.append((f"s3://{bucket}/{obj['Key']}", obj["Size"]))
    return sorted(found)


def _glob_regex(pattern: str) -> re.Pattern:
    """`**` matches across folders (also none), `*` and `?` stay within one folder."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(pattern[i]))
                i += 1
            else:
                out.append(fnmatch.translate(pattern[i : end + 1])[4:-3])
                i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def match(pattern_url: str) -> list[tuple[str, int]]:
    bucket, key_pattern = bucket_and_key(pattern_url)
    literal = re.split(r"[*?\[]", key_pattern, maxsplit=1)[0]
    if literal == key_pattern:  # no wildcard: that one object
        return [(u, s) for u, s in list_files(pattern_url) if u == pattern_url]
    regex = _glob_regex(key_pattern)
    prefix_url = f"s3://{bucket}/{literal}"
    return [(u, s) for u, s in list_files(prefix_url) if regex.match(u[len(f"s3://{bucket}/") :])]


def exists(url: str) -> bool:
    """An object, or a 'folder' with at least one object under it."""
    bucket, key = bucket_and_key(url)
    try:
        _head(url)
        return True
    except (FileNotFoundError, TrackpipeError):
        pass
    response = _list_one(url, bucket, key.rstrip("/") + "/")
    return bool(response.get("KeyCount"))


@_clean_errors
def _list_one(url: str, bucket: str, prefix: str) -> dict:
    return client().list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)


def delete_files(urls: list[str]) -> None:
    by_bucket: dict[str, list[str]] = {}
    for url in urls:
        bucket, key = bucket_and_key(url)
        by_bucket.setdefault(bucket, []).append(key)
    for bucket, keys in by_bucket.items():
        for start in range(0, len(keys), 1000):
            _delete_batch(f"s3://{bucket}/", bucket, keys[start : start + 1000])


@_clean_errors
def _delete_batch(url: str, bucket: str, keys: list[str]) -> None:
    response = client().delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})
    errors = response.get("Errors") or []
    if errors:
        first = errors[0]
        raise TrackpipeError(f"S3 could not delete s3://{bucket}/{first.get('Key')}: {first.get('Code')} {first.get('Message', '')}")


@_clean_errors
def copy(src_url: str, dst_url: str) -> None:
    """Server-side copy (managed: multipart for objects above 5 GB)."""
    src_bucket, src_key = bucket_and_key(src_url)
    dst_bucket, dst_key = bucket_and_key(dst_url)
    client().copy({"Bucket": src_bucket, "Key": src_key}, dst_bucket, dst_key)
