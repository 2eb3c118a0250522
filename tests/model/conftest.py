"""Fixtures for the runtime model tests: models of the fixture schemas, and a
qemu-storage-daemon 7.2 to compare against when one is installed."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.qemu_source import QEMU_SRC, QSD_SCHEMA

from qjobd.model import Model
from qjobd.qapi import Schema

HERE = Path(__file__).resolve().parent
SCHEMAS = HERE / "schemas"
BUNDLED = HERE.parent.parent / "schema" / "qjobd.json"

#: The configuration symbols of Debian's qemu-storage-daemon 7.2 build (checked
#: against its query-qmp-schema: every enum it reports has exactly these values).
QSD_DEFINED = frozenset(
    {
        "CONFIG_DBUS_DISPLAY",
        "CONFIG_FUSE",
        "CONFIG_LIBPMEM",
        "CONFIG_LINUX",
        "CONFIG_LINUX_IO_URING",
        "CONFIG_POSIX",
        "CONFIG_REPLICATION",
        "CONFIG_SECRET_KEYRING",
        "CONFIG_SPICE",
        "CONFIG_SPICE_PROTOCOL",
        "CONFIG_VDUSE_BLK_EXPORT",
        "CONFIG_VHOST_CRYPTO",
        "CONFIG_VHOST_USER_BLK_SERVER",
        "CONFIG_ZSTD",
        "HAVE_HOST_BLOCK_DEVICE",
        "HAVE_IPPROTO_MPTCP",
    }
)


@pytest.fixture(scope="session")
def test_model() -> Model:
    """Model of ``schemas/model-test.json`` with ``CONFIG_IR`` defined."""
    return Model(Schema(str(SCHEMAS / "model-test.json")), defined={"CONFIG_IR"})


@pytest.fixture(scope="session")
def plain_model() -> Model:
    """Model of ``schemas/model-test.json`` with nothing defined."""
    return Model(Schema(str(SCHEMAS / "model-test.json")))


@pytest.fixture(scope="session")
def subset_model() -> Model:
    """Model of ``schemas/qsd-subset.json``."""
    return Model(Schema(str(SCHEMAS / "qsd-subset.json")))


@pytest.fixture(scope="session")
def bundled_model() -> Model:
    """Model of the schema qjobd ships."""
    return Model(Schema(str(BUNDLED)))


@pytest.fixture(scope="session")
def qsd_model() -> Model:
    """Model of QEMU's own storage-daemon schema (skips without QEMU source)."""
    if not QSD_SCHEMA.is_file():
        pytest.skip(f"no QEMU source at {QEMU_SRC}")
    return Model(Schema(str(QSD_SCHEMA)), defined=QSD_DEFINED)


def _qsd_binary() -> str:
    found = shutil.which("qemu-storage-daemon")
    if found is None:
        pytest.skip("qemu-storage-daemon is not installed")
    return found


def _run_qsd(workdir: Path, isolate: bool) -> Iterator[Any]:
    from helpers.daemons import stop, wait_for_socket
    from helpers.wire import Wire

    binary = _qsd_binary()
    sock = workdir / "qsd.sock"
    argv = [
        binary,
        "--chardev",
        f"socket,path={sock},server=on,wait=off,id=c0",
        "--monitor",
        "chardev=c0",
    ]
    unshare = shutil.which("unshare")
    if unshare is not None and os.geteuid() == 0:
        argv = [unshare, "-n", *argv]
    elif isolate:
        pytest.skip("needs root and unshare(1) to run qemu-storage-daemon without network")
    process = subprocess.Popen(argv, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_socket(sock, process)
        with Wire(sock) as wire:
            wire.negotiate()
            yield wire
    finally:
        stop(process)


@pytest.fixture(scope="module")
def live_qsd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A negotiated raw QMP connection (``helpers.wire``) to a real
    qemu-storage-daemon, in a directory of its own and, where possible, in a new
    network namespace.  Only requests whose handlers are harmless are sent to it."""
    yield from _run_qsd(tmp_path_factory.mktemp("qsd"), isolate=False)


@pytest.fixture
def isolated_qsd(tmp_path: Path) -> Iterator[Any]:
    """Like ``live_qsd`` but always without network (skips otherwise), for
    arbitrary requests."""
    yield from _run_qsd(tmp_path, isolate=True)
