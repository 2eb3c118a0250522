#!/bin/sh
# Fetches QEMU 7.2's source (Debian's source package) into /tmp/qemu-src, for the
# tests that read QEMU's QAPI schemas and schema test cases ($QEMU_SRC overrides
# where they look).  Best effort: without deb-src access it says so and the tests
# that need the source skip.  Nothing from it goes into the project.
set -u
dest=/tmp/qemu-src
[ -d "$dest/qemu-7.2.0/qapi" ] && exit 0
list=/etc/apt/sources.list.d/debian.sources
src=/etc/apt/sources.list.d/qjobd-debian-src.sources
if [ ! -f "$src" ] && [ -f "$list" ]; then
    { sed 's/^Types: deb$/Types: deb-src/' "$list" > "$src"; } 2>/dev/null
    apt-get update -qq >/dev/null 2>&1
fi
mkdir -p "$dest" && cd "$dest" || exit 0
if apt-get source --download-only -qq qemu >/dev/null 2>&1 \
        && tar xf qemu_7.2*.orig.tar.xz 2>/dev/null && [ -d qemu-7.2.0/qapi ]; then
    echo "fetch-qemu-source: QEMU's source is in $dest/qemu-7.2.0"
else
    echo "fetch-qemu-source: could not fetch QEMU's source; tests that need it skip" >&2
fi
exit 0
