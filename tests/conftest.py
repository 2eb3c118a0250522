"""Shared fixtures: real daemons on real Unix sockets."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers.daemons import Daemon, qsd_available, start_qjobd, start_qsd, stop


@pytest.fixture
def qjobd_socket(tmp_path: Path) -> Iterator[Path]:
    """A qjobd subprocess listening on a fresh socket; yields the socket path."""
    path = tmp_path / "qjobd.sock"
    process = start_qjobd(path)
    yield path
    stop(process)


@pytest.fixture
def qjobd(tmp_path: Path) -> Iterator[Daemon]:
    """A qjobd subprocess as :class:`Daemon`, for tests that quit it and then look
    at its images."""
    path = tmp_path / "qjobd.sock"
    daemon = Daemon(path, start_qjobd(path))
    yield daemon
    stop(daemon.process)


@pytest.fixture
def qsd_socket(tmp_path: Path) -> Iterator[Path]:
    """qemu-storage-daemon 7.2 on a fresh socket (skips when not installed)."""
    if not qsd_available():
        pytest.skip("qemu-storage-daemon is not installed")
    path = tmp_path / "qsd.sock"
    process = start_qsd(path)
    yield path
    stop(process)
