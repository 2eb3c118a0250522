#!/bin/sh
# Installs qjobd into /opt/qjobd (a venv), links qjobd, qjob and qjobd-gen-client
# into /usr/local/bin, and starts the daemon in the background on its default socket
# (/run/qjobd/qmp.sock as root).  Logs go to /var/log/qjobd.log; the job history to
# /var/lib/qjobd/history.sqlite3 (not next to the socket: /run is gone at reboot).
# Run again to upgrade and restart.
set -eu
cd "$(dirname "$0")/.."

if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv
fi
command -v qemu-img >/dev/null 2>&1 || {
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y qemu-utils socat
}

python3 -m venv /opt/qjobd
/opt/qjobd/bin/python -m pip install --quiet --disable-pip-version-check ".[zstd]"
for program in qjobd qjob qjobd-gen-client; do
    ln -sf "/opt/qjobd/bin/$program" "/usr/local/bin/$program"
done

if [ -f /run/qjobd/qjobd.pid ] && kill -0 "$(cat /run/qjobd/qjobd.pid)" 2>/dev/null; then
    kill "$(cat /run/qjobd/qjobd.pid)"
    sleep 1
fi
mkdir -p -m 0700 /run/qjobd /var/lib/qjobd
nohup /usr/local/bin/qjobd --history /var/lib/qjobd/history.sqlite3 >>/var/log/qjobd.log 2>&1 &
echo $! > /run/qjobd/qjobd.pid
for _ in 1 2 3 4 5 6 7 8 9 10; do
    [ -S /run/qjobd/qmp.sock ] && break
    sleep 0.5
done
[ -S /run/qjobd/qmp.sock ] || { echo "qjobd did not start; see /var/log/qjobd.log" >&2; exit 1; }
echo "qjobd $(/usr/local/bin/qjobd --version | cut -d' ' -f2) is listening on /run/qjobd/qmp.sock"
