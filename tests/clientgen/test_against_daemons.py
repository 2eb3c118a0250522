"""Generated clients drive real daemons: qjobd and qemu-storage-daemon.

The committed client (from qjobd's schema) and the one generated from QSD's own
schema each run the same session against both daemons: a node added with a union
argument, a blockdev-create job followed through typed JOB_STATUS_CHANGE events,
query-jobs decoded into JobInfo, an error reply, job-dismiss.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from helpers.daemons import qsd_available, start_qjobd, start_qsd, stop

import qjobd.client


async def session(client_package: ModuleType, socket: Path, workdir: Path) -> list[str]:
    m = client_package.models
    image = workdir / "new.raw"
    client = client_package.Client()
    await client.connect(str(socket))
    try:
        assert "qemu" in client.version  # the greeting, read by connect()
        with client.events("JOB_STATUS_CHANGE") as stream:
            await client.blockdev_create(
                job_id="c1", options=m.BlockdevCreateOptions_file(filename=str(image),
                                                                  size=1 << 20))
            statuses = []
            async for event in stream:
                assert isinstance(event, client_package.events.JobStatusChangeEvent)
                statuses.append(event.status.value)
                if event.status is m.JobStatus.CONCLUDED:
                    break
        [job] = await client.query_jobs()
        assert isinstance(job, m.JobInfo)
        assert (job.id, job.type, job.status, job.error) == (
            "c1", m.JobType.CREATE, m.JobStatus.CONCLUDED, None)
        await client.job_dismiss(id="c1")
        assert await client.query_jobs() == []
        await client.blockdev_add(m.BlockdevOptions_raw(
            node_name="img", file=m.BlockdevOptions_file(filename=str(image))))
        nodes = await client.query_named_block_nodes()
        assert {(n.node_name, n.drv) for n in nodes} >= {("img", "raw")}
        with pytest.raises(client_package.ExecuteError) as error:
            await client.blockdev_add(m.BlockdevOptions_raw(node_name="img2", file="nope"))
        assert error.value.error_class == "GenericError"
        return statuses
    finally:
        await client.disconnect()


DAEMONS = {"qjobd": start_qjobd, "qsd": start_qsd}


@pytest.fixture(params=list(DAEMONS))
def daemon(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    if request.param == "qsd" and not qsd_available():
        pytest.skip("qemu-storage-daemon is not installed")
    socket = tmp_path / "d.sock"
    process = DAEMONS[request.param](socket)
    yield socket, tmp_path
    stop(process)


EXPECTED = ["created", "running", "waiting", "pending", "concluded"]


def test_bundled_client(daemon: tuple[Path, Path]) -> None:
    assert asyncio.run(session(qjobd.client, *daemon)) == EXPECTED


def test_client_of_qsd_schema(daemon: tuple[Path, Path], qsd_client: ModuleType) -> None:
    assert asyncio.run(session(qsd_client, *daemon)) == EXPECTED
