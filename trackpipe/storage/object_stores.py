"""Objects in S3 and Cloud Storage (`s3://`, `gs://`) through pyarrow.fs, behind the functions of
trackpipe.storage.

Why pyarrow.fs: it is already a pinned dependency (ours and Beam's), maintained with Arrow, and
serves both stores through one interface: S3FileSystem (the AWS C++ SDK) and GcsFileSystem
(google-cloud-cpp), built once per process and per settings, so no call pays a client's set-up
cost (Beam's S3 filesystem builds a boto3 client per call: a third of a 20k-event run). Its
files are native Arrow random-access files: reads stream and seek (S3: ranged GETs; GCS: a
download from the offset, reused while reading on), and Arrow IPC files fetch only the record
batches read. Writes are multipart (S3) or resumable (GCS) uploads. fsspec (s3fs, gcsfs) and
smart_open were measured against it: see docs/benchmarks.md, "Object stores", and
docs/architecture.md, "Storage".

Where pyarrow cannot do something, or needs more requests, each store's own SDK does it,
imported only when needed:
- S3 (boto3): deletes, 1000 keys per DeleteObjects request (pyarrow sends three requests per
  object and leaves `dir/` marker objects behind); the bucket check.
- GCS (google-cloud-storage): copies (one rewrite request; pyarrow first checks the parent
  "folder", two more), deletes (one request; pyarrow adds a GET), objects under
  GCS_UPLOAD_CHUNK (one upload request; pyarrow's resumable upload costs two); the bucket check.
- The lock's conditional create (trackpipe.storage.lock).
Settings: trackpipe.storage.s3_settings (Beam's S3 options or the AWS variables) and
trackpipe.storage.gcs_settings (the Google variables).

Errors become one TrackpipeError line naming the URL (`explain`); a missing object stays a
FileNotFoundError. Retries and timeouts are bounded: S3 3 tries of at most 15 s without an
answer; GCS gcs_settings.RETRY_SECONDS of retries per call (pyarrow's client gives up on a server
that accepts connections but never answers after 2 minutes, which is not configurable through
pyarrow: the bucket check before a run, with a 15 s read timeout, meets such a server first).
"""

from __future__ import annotations

import fnmatch
import functools
import io
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.fs as pafs

# (not `from trackpipe.storage import ...`, which would import the package, which imports this)
import trackpipe.storage.gcs_settings as gcs_settings
import trackpipe.storage.s3_settings as s3_settings
from trackpipe.errors import TrackpipeError

SCHEMES = ("s3", "gs")
READ_BUFFER = 8 * 1024 * 1024  # bytes a buffer refill asks for (S3: one ranged GET)
GCS_UPLOAD_CHUNK = 16 * 1024 * 1024  # bytes gathered per resumable-upload request (pyarrow sends one per write())
S3_DELETE_BATCH = 1000  # keys per DeleteObjects request (the API's limit)
GCS_DELETE_THREADS = 8  # one DELETE per object (fake-gcs-server has no batch endpoint)

_lock = threading.Lock()
_cache: dict = {}


def is_object_store(url: str) -> bool:
    return url.startswith(("s3://", "gs://"))


def split(url: str) -> tuple[str, str, str]:
    """'s3://bucket/a/b' -> ('s3', 'bucket', 'a/b')."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in SCHEMES:
        raise TrackpipeError(f"not an s3:// or gs:// URL: {url}")
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise TrackpipeError(f"no bucket in {url}")
    return scheme, bucket, key


def _path(url: str) -> tuple[str, str]:
    """The store's scheme and pyarrow's path ('bucket/key') of a URL."""
    scheme, bucket, key = split(url)
    return scheme, f"{bucket}/{key}".rstrip("/")


def _settings(scheme: str):
    return s3_settings.settings() if scheme == "s3" else gcs_settings.settings()


def _cached(kind: str, scheme: str):
    settings = _settings(scheme)
    key = (kind, scheme, settings)
    with _lock:
        found = _cache.get(key)
        if found is None:
            found = _cache[key] = settings.filesystem() if kind == "fs" else settings.client()
        return found


def filesystem(scheme: str) -> pafs.FileSystem:
    """The process's pyarrow filesystem for `scheme`, with the current settings."""
    return _cached("fs", scheme)


def sdk_client(scheme: str):
    """The process's boto3 (s3) or google-cloud-storage (gs) client, with the current settings."""
    return _cached("sdk", scheme)


# ---------------------------------------------------------------- errors


def _endpoint(scheme: str) -> str:
    if scheme == "s3":
        return s3_settings.settings().endpoint_url or "the AWS S3 endpoint"
    return gcs_settings.settings().endpoint_or_default


_UNREACHABLE = (
    "NETWORK_CONNECTION",
    "COULD NOT CONNECT",
    "COULDN'T CONNECT",
    "COULD NOT RESOLVE",
    "CONNECTION REFUSED",
    "FAILED TO ESTABLISH",
    "NAME OR SERVICE NOT KNOWN",
    "CONNECTION ABORTED",
    "CONNECTION RESET",
    "MAX RETRIES EXCEEDED",
)
_TIMEOUT = ("READ TIMED OUT", "READ TIMEOUT", "TIMEOUT WAS REACHED", "REQUEST_TIMEOUT", "TIMED OUT", "STALLED")
_NO_BUCKET = ("NOSUCHBUCKET", "NO_SUCH_BUCKET", "BUCKET DOES NOT EXIST", "THE SPECIFIED BUCKET DOES NOT EXIST")
_BAD_KEY = (
    "INVALIDACCESSKEYID",
    "INVALID_ACCESS_KEY_ID",
    "SIGNATUREDOESNOTMATCH",
    "SIGNATURE_DOES_NOT_MATCH",
    "UNAUTHENTICATED",
    "INVALID_GRANT",
    "INVALID_CLIENT",
    "UNAUTHORIZED",
    " 401",
)
_DENIED = ("ACCESSDENIED", "ACCESS_DENIED", "PERMISSION_DENIED", "FORBIDDEN", " 403")


def _code(exc: BaseException) -> str:
    """The store's error code when the error carries one (S3's `SignatureDoesNotMatch`, an HTTP
    status from google-cloud-storage), else ''."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore's ClientError
        return str(response.get("Error", {}).get("Code", ""))
    found = re.search(r"AWS Error ([A-Z_]+)", str(exc))  # pyarrow's S3 errors
    if found:
        return found.group(1)
    code = getattr(exc, "code", None)  # google.api_core's HTTP errors
    return str(code) if isinstance(code, int) else ""


def _kind(exc: BaseException) -> str:
    name = exc.__class__.__name__
    if name in ("NoCredentialsError", "DefaultCredentialsError"):
        return "no_credentials"
    if name == "RefreshError":
        return "bad_credentials"
    if name in ("EndpointConnectionError", "ConnectionError", "ConnectTimeoutError") and "timed out" not in str(exc).lower():
        return "unreachable"
    code = _code(exc)
    text = f" {code} {name} {exc}".upper()
    for kind, markers in (("no_bucket", _NO_BUCKET), ("bad_credentials", _BAD_KEY), ("denied", _DENIED)):
        if any(m in text for m in markers):
            return kind
    if code in ("404", "NotFound") or name == "NotFound":
        return "not_found"
    if any(m in text for m in _TIMEOUT):
        return "timeout"
    if any(m in text for m in _UNREACHABLE):
        return "unreachable"
    return "other"


def explain(exc: BaseException, url: str) -> str:
    """One line for a failure of either store, from any of its clients (pyarrow's C++ SDKs,
    boto3, google-cloud-storage, google-auth), naming the URL and what to check."""
    scheme, bucket, _ = split(url)
    s3 = scheme == "s3"
    store = "S3" if s3 else "Cloud Storage"
    kind = _kind(exc)
    code = _code(exc)
    said = f" ({code})" if code else ""
    if kind == "no_credentials":
        if s3:
            return f"no AWS credentials for {url}: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, or --s3_access_key_id/--s3_secret_access_key"
        return (
            f"no Google credentials for {url}: set GOOGLE_APPLICATION_CREDENTIALS to a key file, run `gcloud auth "
            f"application-default login`, or set STORAGE_EMULATOR_HOST for a local server ({_first_line(exc, 160).split('. ')[0].rstrip('.')})"
        )
    if kind == "unreachable":
        hint = "AWS_ENDPOINT_URL / --s3_endpoint_url" if s3 else "STORAGE_EMULATOR_HOST, or the network to storage.googleapis.com"
        return f"cannot reach {_endpoint(scheme)} for {url}: is the endpoint right ({hint}) and the server up?"
    if kind == "timeout":
        return f"{_endpoint(scheme)} did not answer in time for {url}: is the endpoint right and the server healthy?"
    if kind in ("no_bucket", "not_found"):
        return f"the bucket '{bucket}' does not exist ({url})"
    if kind == "bad_credentials":
        if s3:
            return f"S3 refused the credentials for {url}{said}: check the access key and secret"
        return f"Cloud Storage refused the credentials for {url}{said}: check GOOGLE_APPLICATION_CREDENTIALS or gcloud's login ({_token_answer(exc)})"
    if kind == "denied":
        return f"{store} refused access to {url}{said}: check the credentials and their permissions on bucket '{bucket}'"
    return f"{store} error for {url}: {_first_line(exc, 300)}"


def _token_answer(exc: BaseException) -> str:
    """What the token endpoint said, from google-auth's RefreshError(reason, response data)."""
    data = exc.args[1] if len(exc.args) > 1 else None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):  # an HTTP error answer: {"error": {"code": 404, "message": ...}}
        return f"the token endpoint answered {error.get('code', '?')} {error.get('message', '')}".strip()
    if isinstance(error, str):  # OAuth: {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        return f"{error}: {data.get('error_description', '')}".strip(" :")
    return _first_line(exc, 160)


def _first_line(exc: BaseException, limit: int) -> str:
    text = str(exc)
    first = next((line.strip() for line in text.splitlines() if line.strip()), exc.__class__.__name__)
    return first[:limit]


def _one_line_errors(func):
    """FileNotFoundError stays (callers test for a missing object); every other error of a
    store's client becomes one TrackpipeError line naming the URL."""

    @functools.wraps(func)
    def wrapper(url, *args, **kwargs):
        try:
            return func(url, *args, **kwargs)
        except (TrackpipeError, FileNotFoundError):
            raise
        except Exception as exc:  # noqa: BLE001 - pyarrow raises OSError with the SDK's text; the SDKs their own types
            if isinstance(exc, (OSError, pa.ArrowException)) or exc.__class__.__module__.startswith(
                ("botocore", "boto3", "google", "urllib3", "requests")
            ):
                raise TrackpipeError(explain(exc, url)) from None
            raise

    return wrapper


# ---------------------------------------------------------------- streams


class _Reader(io.RawIOBase):
    """A pyarrow random-access file as a seekable Python raw stream, with one-line errors."""

    def __init__(self, native, url: str):
        self._native = native
        self._url = url

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._native.seek(offset, whence)

    def tell(self) -> int:
        return self._native.tell()

    def readinto(self, buffer) -> int:
        try:
            return self._native.readinto(buffer)
        except OSError as exc:
            raise TrackpipeError(explain(exc, self._url)) from None

    def close(self) -> None:
        if not self.closed:
            self._native.close()
        super().close()


class _Writer(io.RawIOBase):
    """A binary sink whose object appears when it is closed. S3: pyarrow's output stream
    (one PUT for a small object, a multipart upload for a big one). GCS: bytes are gathered in
    GCS_UPLOAD_CHUNK pieces, because pyarrow sends one resumable-upload request per write();
    an object that stays under one piece is sent at close as one upload request through
    google-cloud-storage (pyarrow's resumable upload costs two)."""

    def __init__(self, url: str):
        self._url = url
        self._scheme, self._path = _path(url)
        self._pending = bytearray()
        self._native = None
        if self._scheme == "s3":
            self._native = self._open_native()

    def _open_native(self):
        # compression=None: pyarrow's default ('detect') would gzip whatever is named *.gz
        return filesystem(self._scheme).open_output_stream(self._path, compression=None)

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        size = memoryview(data).nbytes
        try:
            if self._scheme == "s3":
                self._native.write(data)
            else:
                self._pending += data
                if len(self._pending) >= GCS_UPLOAD_CHUNK:
                    self._native = self._native or self._open_native()
                    self._native.write(bytes(self._pending))
                    self._pending = bytearray()
        except OSError as exc:
            raise TrackpipeError(explain(exc, self._url)) from None
        return size

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._native is None:
                _upload_gcs_object(self._url, bytes(self._pending))
            else:
                if self._pending:
                    self._native.write(bytes(self._pending))
                self._native.close()  # completes the upload
        except FileNotFoundError:
            raise TrackpipeError(f"the bucket '{split(self._url)[1]}' does not exist ({self._url})") from None
        except OSError as exc:
            raise TrackpipeError(explain(exc, self._url)) from None
        finally:
            self._pending = bytearray()
            super().close()


@_one_line_errors
def _upload_gcs_object(url: str, data: bytes) -> None:
    _scheme, bucket, key = split(url)
    blob = sdk_client("gs").bucket(bucket).blob(key)
    blob.upload_from_string(data, content_type="application/octet-stream", retry=gcs_settings.retry(), timeout=gcs_settings.TIMEOUT)


@_one_line_errors
def open_read(url: str, buffer_size: int = READ_BUFFER):
    """A buffered, seekable binary stream of the object's bytes (a missing object raises
    FileNotFoundError here)."""
    return io.BufferedReader(_Reader(open_arrow_input(url), url), buffer_size=buffer_size)


@_one_line_errors
def open_write(url: str):
    return _Writer(url)


@_one_line_errors
def open_arrow_input(url: str):
    """pyarrow's random-access file: Arrow fetches the footer and the batches it reads, by range.
    (GCS: opening reads the object's metadata; the first read streams from its offset on.)"""
    scheme, path = _path(url)
    try:
        return filesystem(scheme).open_input_file(path)
    except FileNotFoundError:
        raise FileNotFoundError(2, "No such object", url) from None


# ---------------------------------------------------------------- listing and globbing


@_one_line_errors
def list_files(prefix_url: str) -> list[tuple[str, int]]:
    """(url, size) of every object under a folder (a key prefix ending in '/'), recursively,
    sorted. Folder markers (keys ending in '/') are not files."""
    return _list(*split(prefix_url))


def _list(scheme: str, bucket: str, folder: str) -> list[tuple[str, int]]:
    selector = pafs.FileSelector(f"{bucket}/{folder.rstrip('/')}".rstrip("/"), recursive=True, allow_not_found=True)
    infos = filesystem(scheme).get_file_info(selector)
    return sorted((f"{scheme}://{info.path}", info.size) for info in infos if info.type == pafs.FileType.File)


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


@_one_line_errors
def match(pattern_url: str) -> list[tuple[str, int]]:
    """Objects matching a glob as (url, size), sorted: one recursive listing of the deepest
    folder without wildcards. A pattern without wildcards matches that one object."""
    scheme, bucket, key_pattern = split(pattern_url)
    literal = re.split(r"[*?\[]", key_pattern, maxsplit=1)[0]
    if literal == key_pattern:
        info = _info(pattern_url)
        return [(pattern_url, info.size)] if info.type == pafs.FileType.File else []
    regex = _glob_regex(key_pattern)
    root = f"{scheme}://{bucket}/"
    return [(u, s) for u, s in _list(scheme, bucket, literal.rpartition("/")[0]) if regex.match(u[len(root) :])]


@_one_line_errors
def _info(url: str) -> pafs.FileInfo:
    scheme, path = _path(url)
    return filesystem(scheme).get_file_info(path)


def exists(url: str) -> bool:
    """An object, or a 'folder' with at least one object under it."""
    return _info(url).type != pafs.FileType.NotFound


# ---------------------------------------------------------------- copies and deletes


@_one_line_errors
def copy(src_url: str, dst_url: str) -> None:
    """Server-side copy within one store. S3: CopyObject through pyarrow (objects up to 5 GB;
    trackpipe's are far smaller). GCS: rewrite through google-cloud-storage, one request (pyarrow
    first checks that the parent 'folder' exists: two more per object)."""
    src_scheme, src_bucket, src_key = split(src_url)
    dst_scheme, dst_bucket, dst_key = split(dst_url)
    if src_scheme != dst_scheme:
        raise TrackpipeError(f"cannot copy {src_url} to {dst_url} server-side: different stores")
    if src_scheme == "s3":
        try:
            filesystem("s3").copy_file(f"{src_bucket}/{src_key}", f"{dst_bucket}/{dst_key}")
        except FileNotFoundError:
            raise FileNotFoundError(2, "No such object", src_url) from None
        return
    from google.api_core.exceptions import NotFound

    client = sdk_client("gs")
    source = client.bucket(src_bucket).blob(src_key)
    target = client.bucket(dst_bucket).blob(dst_key)
    token = None
    try:
        while True:  # big objects across locations or storage classes take several calls
            token, _done, _total = target.rewrite(source, token=token, retry=gcs_settings.retry(), timeout=gcs_settings.TIMEOUT)
            if token is None:
                return
    except NotFound:
        raise FileNotFoundError(2, "No such object (or bucket)", src_url) from None


def delete_files(urls: list[str]) -> None:
    """Delete objects; missing ones are fine. S3: DeleteObjects, 1000 keys a request. GCS: one
    DELETE per object (google-cloud-storage), several at a time."""
    s3_keys: dict[str, list[str]] = {}
    gs_urls = []
    for url in sorted(set(urls)):
        scheme, bucket, key = split(url)
        if scheme == "s3":
            s3_keys.setdefault(bucket, []).append(key)
        else:
            gs_urls.append(url)
    for bucket, keys in s3_keys.items():
        for start in range(0, len(keys), S3_DELETE_BATCH):
            _delete_s3_batch(f"s3://{bucket}/{keys[start]}", bucket, keys[start : start + S3_DELETE_BATCH])
    if len(gs_urls) <= 2:
        for url in gs_urls:
            _delete_gcs_object(url)
    elif gs_urls:
        with ThreadPoolExecutor(GCS_DELETE_THREADS) as pool:
            list(pool.map(_delete_gcs_object, gs_urls))


@_one_line_errors
def _delete_s3_batch(url: str, bucket: str, keys: list[str]) -> None:
    response = sdk_client("s3").delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})
    errors = response.get("Errors") or []
    if errors:
        first = errors[0]
        raise TrackpipeError(f"S3 could not delete s3://{bucket}/{first.get('Key')}: {first.get('Code')} {first.get('Message', '')}")


@_one_line_errors
def _delete_gcs_object(url: str) -> None:
    from google.api_core.exceptions import NotFound

    _scheme, bucket, key = split(url)
    try:
        sdk_client("gs").bucket(bucket).blob(key).delete(retry=gcs_settings.retry(), timeout=gcs_settings.TIMEOUT)
    except NotFound:
        pass


# ---------------------------------------------------------------- buckets and settings


def check_bucket(url: str) -> None:
    """Fail with one clear line unless the bucket of `url` exists, the endpoint answers and the
    credentials may list it. Run before anything is written: SeaweedFS creates a missing bucket
    on the first PUT instead of refusing it, and a run that fails midway has cost time. One
    listing of at most one object through the store's SDK: listing is what trackpipe needs (a
    bucket's metadata is often not readable with object-only roles), and its answer says which
    of bucket, key or secret is wrong, where a HEAD request's empty 403 cannot."""
    scheme, bucket, _ = split(url)
    try:
        if scheme == "s3":
            sdk_client("s3").list_objects_v2(Bucket=bucket, MaxKeys=1)
        else:
            blobs = sdk_client("gs").list_blobs(bucket, max_results=1, retry=gcs_settings.retry(), timeout=gcs_settings.CHECK_TIMEOUT)
            list(blobs)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line
        raise TrackpipeError(explain(exc, url)) from None


def check_buckets(urls) -> None:
    """check_bucket once per bucket of the object-store URLs among `urls` (others are skipped)."""
    seen = set()
    for url in urls:
        if url and is_object_store(url):
            scheme, bucket, _ = split(url)
            if (scheme, bucket) not in seen:
                seen.add((scheme, bucket))
                check_bucket(url)


def add_arguments(parser) -> None:
    """The object-store settings of commands that are not pipelines (`load`, `report`)."""
    s3_settings.add_arguments(parser)
    gcs_settings.add_arguments(parser)


def configure_from_args(args) -> None:
    """Use the options added by add_arguments in this process (GCS: the variables, read at use)."""
    s3_settings.configure_from_args(args)
