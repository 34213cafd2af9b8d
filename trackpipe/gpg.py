"""GnuPG for research packages: check recipients' keys up front, encrypt files with real `gpg`.

Recipients are public key files (ASCII-armored or binary) or fingerprints of keys in the
operator's keyring (GNUPGHOME). The driver resolves them all before the pipeline starts, so a
missing or unusable key fails the run before anything is written; workers then get the public
key material itself (not a path) and import it into a private, temporary keyring.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field

from trackpipe.config import OrgsConfig
from trackpipe.errors import ConfigError, TrackpipeError

_FPR = re.compile(r"^(?:0x)?[0-9A-Fa-f]{16,40}$")


def gpg_binary() -> str:
    found = shutil.which("gpg")
    if not found:
        raise TrackpipeError("gpg is not installed (Debian: apt-get install gnupg); it is needed to encrypt research packages")
    return found


def _run(args: list[str], home: str | None, data: bytes | None = None) -> subprocess.CompletedProcess:
    cmd = [gpg_binary(), "--batch", "--no-tty", "--quiet"]
    if home:
        cmd += ["--homedir", home]
    return subprocess.run(cmd + args, input=data, capture_output=True, check=False)


def _encryption_keys(listing: str) -> list[str]:
    """Fingerprints of primary keys that can encrypt (capability `E`), from --with-colons output."""
    keys, current = [], None
    for line in listing.splitlines():
        fields = line.split(":")
        if fields[0] == "pub":
            current = {"caps": fields[11] if len(fields) > 11 else "", "fpr": None, "revoked": fields[1] in ("r", "e")}
            keys.append(current)
        elif fields[0] == "fpr" and current is not None and current["fpr"] is None:
            current["fpr"] = fields[9]
    return [k["fpr"] for k in keys if k["fpr"] and "E" in k["caps"] and not k["revoked"]]


@dataclass(frozen=True)
class PackageKeys:
    """Per package (lower-case org): the fingerprints to encrypt to; plus the armored public
    keys of all of them, for the workers' keyring."""

    recipients: dict[str, tuple[str, ...]] = field(default_factory=dict)
    armored: bytes = b""

    def for_package(self, package: str) -> tuple[str, ...]:
        return self.recipients.get(package, self.recipients.get("*", ()))


def resolve_keys(orgs: OrgsConfig) -> PackageKeys:
    """Check every recipient of the org config; raise ConfigError naming the org and key."""
    specs: dict[str, tuple[str, ...]] = {entry.name.lower(): entry.recipients + orgs.master_recipients for entry in orgs.orgs}
    if not orgs.listed:
        specs = {"*": orgs.master_recipients}
    if not any(specs.values()):
        return PackageKeys()
    cache: dict[str, str] = {}
    armored: dict[str, bytes] = {}
    home = tempfile.mkdtemp(prefix="tpgpg-", dir="/tmp")
    try:
        resolved = {}
        for package, keys in specs.items():
            fingerprints = []
            for spec in keys:
                if spec not in cache:
                    cache[spec] = _resolve_one(spec, home, package, armored)
                fingerprints.append(cache[spec])
            resolved[package] = tuple(dict.fromkeys(fingerprints))
        return PackageKeys(recipients=resolved, armored=b"".join(armored[f] for f in sorted(armored)))
    finally:
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)


def _resolve_one(spec: str, home: str, package: str, armored: dict[str, bytes]) -> str:
    who = f"recipient {spec!r} of org '{package}'" if package != "*" else f"master recipient {spec!r}"
    if os.path.exists(spec):
        with open(spec, "rb") as handle:
            material = handle.read()
        shown = _run(["--with-colons", "--import-options", "show-only", "--import"], home, material)
        found = _encryption_keys(shown.stdout.decode()) if shown.returncode == 0 else []
        if shown.returncode != 0 or not shown.stdout.strip():
            raise ConfigError(f"{who}: not a valid public key file ({shown.stderr.decode(errors='replace').strip()[:200]})")
        if not found:
            raise ConfigError(f"{who}: the key file holds no key that can encrypt (or it is revoked or expired)")
        if _run(["--import"], home, material).returncode != 0:
            raise ConfigError(f"{who}: gpg cannot import the key file")
        fingerprint = found[0]
    elif _FPR.match(spec) or "@" in spec:
        listing = _run(["--with-colons", "--fingerprint", "--list-keys", spec], None)
        found = _encryption_keys(listing.stdout.decode()) if listing.returncode == 0 else []
        if not found:
            raise ConfigError(
                f"{who}: no usable public key with that id in the GnuPG keyring (GNUPGHOME={os.environ.get('GNUPGHOME', '~/.gnupg')})"
            )
        fingerprint = found[0]
        exported = _run(["--armor", "--export", fingerprint], None).stdout
        imported = _run(["--import"], home, exported)
        if imported.returncode != 0:
            raise ConfigError(f"{who}: cannot export the key from the keyring")
    else:
        raise ConfigError(f"{who}: neither an existing key file nor a key fingerprint")
    armored[fingerprint] = _run(["--armor", "--export", fingerprint], home).stdout
    return fingerprint


class Encryptor:
    """Encrypts files in a private keyring holding the given public keys (one per worker)."""

    def __init__(self, armored: bytes):
        self._home = tempfile.mkdtemp(prefix="tpgpg-", dir="/tmp")
        if armored:
            result = _run(["--import"], self._home, armored)
            if result.returncode != 0:
                raise TrackpipeError(f"cannot import recipients' keys: {result.stderr.decode(errors='replace')[:200]}")

    def encrypt(self, src: str, dst: str, recipients: tuple[str, ...]) -> None:
        args = ["--yes", "--trust-model", "always", "--output", dst, "--encrypt"]
        for fingerprint in recipients:
            args += ["--recipient", fingerprint]
        result = _run(args + [src], self._home)
        if result.returncode != 0:
            raise TrackpipeError(f"gpg could not encrypt {src}: {result.stderr.decode(errors='replace').strip()[:300]}")

    def close(self) -> None:
        subprocess.run(["gpgconf", "--homedir", self._home, "--kill", "all"], capture_output=True, check=False)
        shutil.rmtree(self._home, ignore_errors=True)
