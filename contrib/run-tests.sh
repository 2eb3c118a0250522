#!/bin/sh
# Runs qjobd's test suite on a fresh Debian machine (as root) or a developer's one.
# Installs what the tests need when it is missing: qemu-img and qemu-storage-daemon
# (the reference daemon the differential tests compare against), socat,
# systemd-socket-activate and systemd-analyze (package systemd), python3-venv;
# QEMU 7.2's source for its schemas (contrib/fetch-qemu-source.sh, best effort);
# then Python dependencies into ./.venv, then pytest.  Extra arguments go to pytest.
set -eu
cd "$(dirname "$0")/.."

missing=""
command -v qemu-img >/dev/null 2>&1 || missing="$missing qemu-utils"
command -v qemu-storage-daemon >/dev/null 2>&1 || missing="$missing qemu-system-common"
command -v socat >/dev/null 2>&1 || missing="$missing socat"
command -v systemd-socket-activate >/dev/null 2>&1 || missing="$missing systemd"
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing="$missing python3-venv"
if [ -n "$missing" ]; then
    echo "run-tests: installing$missing"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y $missing
fi

# QEMU's own QAPI schemas and schema test cases (skipped when unavailable).
[ -n "${QEMU_SRC:-}" ] || sh contrib/fetch-qemu-source.sh

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
exec .venv/bin/python -m pytest "$@"
