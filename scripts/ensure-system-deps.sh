#!/usr/bin/env bash
# Install, only when missing, the Debian packages the test suite needs as real services:
#   postgresql -> initdb/pg_ctl/postgres for the throwaway cluster in tests/services.py
#   gnupg      -> gpg, gpg-agent, gpgconf for the encryption tests
#   chromium   -> headless browser for the report tests
#
# Idempotent and fast: when everything is present it only runs a few `command -v`/`ls`
# checks and never touches apt. `apt-get update` runs only if something must be installed.
# Must run as root to install; a non-root run that finds something missing exits 1 with
# the command to run instead.
set -euo pipefail

# The PostgreSQL server binaries live in /usr/lib/postgresql/<ver>/bin on Debian; they are
# not on PATH (a /usr/local/bin symlink may exist on a dev box but not on a clean CI runner).
have_postgres() {
    local bin
    for bin in /usr/lib/postgresql/*/bin; do
        [[ -x "$bin/initdb" && -x "$bin/pg_ctl" && -x "$bin/postgres" ]] && return 0
    done
    command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1
}

have_gnupg() {
    command -v gpg >/dev/null 2>&1 &&
        command -v gpg-agent >/dev/null 2>&1 &&
        command -v gpgconf >/dev/null 2>&1
}

have_chromium() {
    command -v chromium >/dev/null 2>&1
}

missing=()
have_postgres || missing+=(postgresql)
have_gnupg || missing+=(gnupg)
have_chromium || missing+=(chromium)

if ((${#missing[@]} == 0)); then
    echo "ensure-system-deps: postgresql, gnupg, chromium already present"
    exit 0
fi

if ((EUID != 0)); then
    echo "ensure-system-deps: missing Debian packages: ${missing[*]}" >&2
    echo "ensure-system-deps: run as root: sudo bash scripts/ensure-system-deps.sh" >&2
    echo "ensure-system-deps: (or: sudo apt-get install -y ${missing[*]})" >&2
    exit 1
fi

log="$(mktemp /tmp/ensure-system-deps.XXXXXX.log)"
run_apt() {
    if ! DEBIAN_FRONTEND=noninteractive "$@" >>"$log" 2>&1; then
        echo "ensure-system-deps: '$*' failed; last lines of $log:" >&2
        tail -n 30 "$log" >&2
        exit 1
    fi
}

run_apt apt-get update -qq
# --no-install-recommends keeps chromium from pulling a desktop stack (notification
# daemon, printer config, upower...). Headless rendering needs none of that.
run_apt apt-get install -y -qq --no-install-recommends "${missing[@]}"

for pkg in "${missing[@]}"; do
    case "$pkg" in
        postgresql) have_postgres && echo "installed postgresql ($(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1))" ;;
        gnupg) have_gnupg && echo "installed gnupg ($(command -v gpg))" ;;
        chromium) have_chromium && echo "installed chromium ($(command -v chromium))" ;;
    esac
done

# Re-check: a package that installed but does not provide what we look for is an error,
# not something to discover later as a confusing test failure.
have_postgres || { echo "ensure-system-deps: postgresql installed but initdb/pg_ctl not found" >&2; exit 1; }
have_gnupg || { echo "ensure-system-deps: gnupg installed but gpg/gpg-agent/gpgconf not found" >&2; exit 1; }
have_chromium || { echo "ensure-system-deps: chromium installed but not on PATH" >&2; exit 1; }
rm -f "$log"
