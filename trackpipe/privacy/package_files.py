"""Research packages without the events of retired learners. No Beam here.

A package (`research_package/<org>/<site>/events/<YYYY>/<org>-<site>-events-<day>.log.gz[.gpg]`)
holding events of retired learners is written again: the other lines byte for byte in the same
order, gzipped as a run gzips them, and, when it was encrypted, encrypted again to the same
recipients (the fingerprints its MANIFEST lists under `encrypted_for`). Its MANIFEST gets the new
event count, size and SHA-256. A package left with no event is deleted with its MANIFEST, as a
run leaves no package for an org-day without events.

Reading an encrypted package needs the secret key of one of its recipients (typically the master
recipient's) in the operator's GnuPG keyring (GNUPGHOME): every encrypted package is decrypted
before anything changes, and if one cannot be, the command stops naming it. The recipients'
public keys come from the config's org keys and from the operator's keyring. A pseudonymised
package (org config `pseudonymise`) holds pseudonyms: the retired learners are looked for under
their pseudonyms, which needs the pseudonym key (`privacy.pseudonym_key_file` or
TRACKPIPE_PSEUDONYM_KEY) the packages were made with.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import subprocess
import zlib
from dataclasses import dataclass

from trackpipe import storage
from trackpipe.config import Config, KeySource
from trackpipe.errors import ConfigError, TrackpipeError, first_line
from trackpipe.events.layout import PACKAGE_DIR
from trackpipe.events.pseudonyms import Pseudonymiser
from trackpipe.gpg import Encryptor, gpg_binary, resolve_keys
from trackpipe.privacy.jobs import Staging, at
from trackpipe.privacy.matching import LineMatcher
from trackpipe.privacy.removal_counts import Removal
from trackpipe.privacy.retired_users import RetiredList
from trackpipe.storage.formats import GzipWriter

PACKAGE_FILE = re.compile(
    rf"^{PACKAGE_DIR}/(?P<org>[^/]+)/(?P<site>[^/]+)/events/(?P<year>\d{{4}})/"
    r"(?P=org)-(?P=site)-events-(?P<date>\d{4}-\d{2}-\d{2})\.log\.gz(?P<gpg>\.gpg)?$"
)
PACKAGE_MANIFEST = re.compile(rf"^{PACKAGE_DIR}/[^/]+/[^/]+/events/\d{{4}}/MANIFEST-(?P<date>\d{{4}}-\d{{2}}-\d{{2}})\.json$")
# Lines handed to the gzip writer at once: the slices a run writes (transforms/package.py,
# WRITE_SLICE_ROWS), so a package written again is byte-identical to one a run would write.
WRITE_LINES = 32_768
_FINGERPRINT = re.compile(r"^[0-9A-Fa-f]{16,40}$")


@dataclass
class Package:
    rel: str
    org: str
    date: str
    encrypted: bool
    manifest_rel: str
    manifest: dict | None = None
    plain: str | None = None  # local gzip file (decrypted when the package is encrypted)

    @property
    def name(self) -> str:
        return self.rel.rsplit("/", 1)[-1]

    def recipients(self) -> tuple[str, ...]:
        listed = tuple((self.manifest or {}).get("encrypted_for") or ())
        bad = [f for f in listed if not isinstance(f, str) or not _FINGERPRINT.match(f)]
        if bad:
            raise TrackpipeError(f"{self.manifest_rel}: {bad[0]!r} in encrypted_for is not a key fingerprint; nothing was changed")
        return listed

    def pseudonymised(self, config: Config) -> bool:
        content = str((self.manifest or {}).get("content") or "")
        return "pseudonym" in content or config.pseudonymised(self.org)


def find_packages(rels: list[str]) -> list[Package]:
    found = []
    for rel in rels:
        match = PACKAGE_FILE.match(rel)
        if match:
            folder = rel.rsplit("/", 1)[0]
            found.append(Package(rel, match["org"], match["date"], bool(match["gpg"]), f"{folder}/MANIFEST-{match['date']}.json"))
    return found


def _gpg(args: list[str], data: bytes | None = None) -> subprocess.CompletedProcess:
    """gpg on the operator's keyring (GNUPGHOME); arguments are fingerprints and local file names."""
    return subprocess.run([gpg_binary(), "--batch", "--no-tty", "--quiet", *args], input=data, capture_output=True, check=False)


def _decrypt(src: str, dst: str) -> str | None:
    """Decrypt with the operator's keyring; the reason it failed, or None."""
    result = _gpg(["--yes", "--output", dst, "--decrypt", src])
    if result.returncode == 0:
        return None
    lines = result.stderr.decode(errors="replace").strip().splitlines()
    return f"gpg: {lines[-1][:200]}" if lines else f"gpg exit status {result.returncode}"


def _fingerprints_in(bundle: bytes) -> set[str]:
    shown = _gpg(["--with-colons", "--import-options", "show-only", "--import"], bundle)
    found, after_pub = set(), False
    for line in shown.stdout.decode(errors="replace").splitlines():
        fields = line.split(":")
        if fields[0] == "pub":
            after_pub = True
        elif fields[0] == "fpr" and after_pub:
            found.add(fields[9].upper())
            after_pub = False
    return found


class _Sealer:
    """Re-encrypts packages to their recipients, with public keys from the config and the keyring."""

    def __init__(self, config: Config):
        self._config = config
        self._encryptor: Encryptor | None = None
        self._available: set[str] = set()

    def prepare(self, packages: list[Package]) -> None:
        needed = sorted({f.upper() for p in packages for f in p.recipients()})
        bundle = b""
        try:
            bundle += resolve_keys(self._config.orgs).armored
        except (ConfigError, TrackpipeError):
            pass  # keys that moved or expired since the run: the keyring may still hold them
        if needed:
            bundle += _gpg(["--armor", "--export", *needed]).stdout
        self._available = _fingerprints_in(bundle) if bundle else set()
        for package in packages:
            if not package.recipients():
                raise TrackpipeError(
                    f"cannot encrypt {package.rel} again: its MANIFEST lists no recipients (encrypted_for); nothing was changed"
                )
            missing = [f for f in package.recipients() if f.upper() not in self._available]
            if missing:
                raise TrackpipeError(
                    f"cannot encrypt {package.rel} again: no public key of its recipient {missing[0]} in the org config's keys "
                    f"or the GnuPG keyring (GNUPGHOME={os.environ.get('GNUPGHOME', '~/.gnupg')}); nothing was changed"
                )
        self._encryptor = Encryptor(bundle)

    def encrypt(self, src: str, dst: str, recipients: tuple[str, ...]) -> None:
        self._encryptor.encrypt(src, dst, recipients)

    def close(self) -> None:
        if self._encryptor is not None:
            self._encryptor.close()


def open_packages(staging: Staging, packages: list[Package]) -> None:
    """Read every package's MANIFEST and make a local plain copy of each package, decrypting the
    encrypted ones; stop, naming them, when some cannot be decrypted (nothing has changed yet)."""
    failures = []
    for package in packages:
        manifest_path = at(staging.output, package.manifest_rel)
        if storage.exists(manifest_path):
            try:
                package.manifest = json.loads(storage.read_bytes(manifest_path))
            except ValueError:
                package.manifest = None
        local = staging.fetch(package.rel)
        if not package.encrypted:
            package.plain = local
            continue
        plain = staging.scratch(f"plain-{hashlib.sha256(package.rel.encode()).hexdigest()[:16]}.gz")
        reason = _decrypt(local, plain)
        if reason is None:
            package.plain = plain
            staging.release(package.rel)
        else:
            failures.append((package, reason))
    if failures:
        package, reason = failures[0]
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        fingerprints = ", ".join(package.recipients()) or "see its MANIFEST"
        raise TrackpipeError(
            f"cannot read the encrypted research package {package.rel}{more}: the GnuPG keyring "
            f"(GNUPGHOME={os.environ.get('GNUPGHOME', '~/.gnupg')}) holds the secret key of none of its recipients "
            f"({fingerprints}): import one (typically the master recipient's) and run forget again ({reason}); nothing was changed"
        )


def _matchers(packages: list[Package], retired: RetiredList, config: Config) -> dict[str, LineMatcher]:
    plain = LineMatcher(retired)
    out: dict[str, LineMatcher] = {}
    key = None
    for package in packages:
        if not package.pseudonymised(config):
            out[package.rel] = plain
            continue
        if key is None:
            try:
                key = KeySource(config.privacy.pseudonym_key_file).load()
            except ConfigError as exc:
                raise TrackpipeError(
                    f"the research package {package.rel} is pseudonymised: finding the retired learners in it needs the key it "
                    f"was made with ({exc}); nothing was changed"
                ) from None
        out[package.rel] = LineMatcher(retired.pseudonymised(Pseudonymiser(key, package.org)))
    return out


def _lines(path: str):
    with gzip.open(path, "rb") as handle:
        yield from handle


def forget_in_packages(staging: Staging, packages: list[Package], retired: RetiredList, config: Config, removal: Removal) -> list:
    """Packages with events of retired learners, written again (staged); returns the actions."""
    matchers = _matchers(packages, retired, config)
    counts = {}
    for package in packages:
        matcher = matchers[package.rel]
        try:
            counts[package.rel] = sum(1 for line in _lines(package.plain) if matcher.matches(line.rstrip(b"\r\n")))
        except (OSError, EOFError, zlib.error) as exc:
            raise TrackpipeError(f"{package.rel}: not a readable gzip file ({first_line(exc)}); nothing was changed") from None
    changed = [p for p in packages if counts[p.rel]]
    sealer = _Sealer(config)
    actions: list[dict] = []
    try:
        if any(p.encrypted for p in changed):
            sealer.prepare([p for p in changed if p.encrypted])
        for package in changed:
            actions.extend(_rewrite(staging, package, matchers[package.rel], sealer, removal, counts[package.rel]))
    finally:
        sealer.close()
    return actions


def _rewrite(staging: Staging, package: Package, matcher: LineMatcher, sealer: _Sealer, removal: Removal, dropped: int) -> list:
    plain = staging.scratch(f"new-{hashlib.sha256(package.rel.encode()).hexdigest()[:16]}.log.gz")
    kept = 0
    with open(plain, "wb") as sink:
        gz = GzipWriter(sink)
        buffer = []
        for line in _lines(package.plain):
            if not matcher.matches(line.rstrip(b"\r\n")):
                buffer.append(line)
                kept += 1
                if len(buffer) == WRITE_LINES:
                    gz.write(b"".join(buffer))
                    buffer = []
        if buffer:
            gz.write(b"".join(buffer))
        gz.close()
    entry = {"org": package.org, "date": package.date, "events_removed": dropped, "encrypted": package.encrypted}
    if kept == 0:
        removal.packages[package.rel] = {**entry, "action": "deleted", "events": 0, "bytes": 0, "sha256": None}
        return [
            {"op": "delete_file", "dst": at(staging.output, package.rel)},
            {"op": "delete_file", "dst": at(staging.output, package.manifest_rel)},
        ]
    final = staging.local(package.rel)
    if package.encrypted:
        sealer.encrypt(plain, final, package.recipients())
    else:
        os.replace(plain, final)
    digest, size = storage.local_file_digest(final)
    removal.packages[package.rel] = {**entry, "action": "rewritten", "events": kept, "bytes": size, "sha256": digest}
    actions = []
    staged = staging.stage(package.rel)
    if staged is not None:
        actions.append({"op": "move_file", "src": staged, "dst": at(staging.output, package.rel)})
    if package.manifest is not None:
        manifest = dict(package.manifest)
        manifest["files"] = [
            {**f, "events": kept, "bytes": size, "sha256": digest} if f.get("name") == package.name else f
            for f in manifest.get("files") or []
        ]
        data = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        actions.append({"op": "write", "dst": at(staging.output, package.manifest_rel), "data": data})
    return actions
