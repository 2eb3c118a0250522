"""qjobd-gen-client: the committed client is fresh, generated clients type-check.

The committed client (qjobd/client/) must be exactly what the generator makes from
the bundled schema; regenerate it with ``sh contrib/gen-client.sh``.  Clients for
QEMU's schemas are generated into temporary directories and checked with
``mypy --strict``, together with a user's snippet that must pass and one that must
not (so the types are real, not ``Any``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.genclient import BUNDLED_SCHEMA, ROOT, write_client
from helpers.qemu_source import FULL_SCHEMA, QSD_SCHEMA

from qjobd.clientgen import generate

COMMITTED = ROOT / "qjobd" / "client"


def test_committed_client_is_up_to_date() -> None:
    files = generate([str(BUNDLED_SCHEMA)])
    committed = {path.name: path.read_text() for path in COMMITTED.iterdir() if path.is_file()}
    assert committed == files, "stale: run sh contrib/gen-client.sh"


def test_generation_is_deterministic_and_independent_of_the_directory(tmp_path: Path) -> None:
    copy = tmp_path / "schema"
    shutil.copytree(ROOT / "schema", copy)
    assert generate([str(copy / "qjobd.json")]) == generate([str(BUNDLED_SCHEMA)])


def run_gen(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qjobd.clientgen", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def test_command_line_writes_a_package_and_replaces_old_modules(tmp_path: Path) -> None:
    out = tmp_path / "pkg"
    out.mkdir()
    (out / "leftover.py").write_text("old = 1\n")
    result = run_gen(str(BUNDLED_SCHEMA), "-o", str(out))
    assert (result.returncode, result.stderr) == (0, "")
    assert sorted(p.name for p in out.iterdir()) == [
        "__init__.py", "_base.py", "_runtime.py", "client.py", "events.py", "models.py",
        "py.typed"]


def test_command_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{ 'command': 'x', 'data': { 'a': 'Nope' } }\n")
    result = run_gen(str(bad), "-o", str(tmp_path / "out"))
    assert result.returncode == 1
    assert f"{bad}:1: parameter 'a' uses unknown type 'Nope'" in result.stderr
    assert "Nope" in result.stderr
    assert not (tmp_path / "out").exists()
    clash = tmp_path / "clash.json"
    clash.write_text("{ 'pragma': { 'member-name-exceptions': [ 'Case' ] } }\n"
                     "{ 'enum': 'Case', 'data': [ 'low', 'LOW' ] }\n")
    result = run_gen(str(clash), "-o", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "values 'LOW' and 'low' of Case would both be LOW" in result.stderr
    assert run_gen(str(clash)).returncode == 2  # no -o


GOOD_USE = """\
from {pkg} import Client, NULL
from {pkg}.models import BlockdevOptions_file, BlockdevOptions_qcow2, JobStatus


async def use(client: Client) -> list[str]:
    await client.blockdev_add(BlockdevOptions_qcow2(
        node_name="n", file=BlockdevOptions_file(filename="/x"), backing=NULL))
    jobs = await client.query_jobs()
    with client.events("JOB_STATUS_CHANGE") as stream:
        event = await stream.get()
        print(event.timestamp)
    return [job.id for job in jobs if job.status is JobStatus.RUNNING]
"""

BAD_USE = """\
from {pkg} import Client


async def use(client: Client) -> list[int]:
    await client.job_cancel(id=3)
    return [job.id for job in await client.query_jobs()]
"""


def mypy_strict(directory: Path, *targets: str) -> subprocess.CompletedProcess[str]:
    mypy = shutil.which("mypy", path=str(Path(sys.executable).parent)) or shutil.which("mypy")
    if mypy is None:
        pytest.skip("mypy is not installed")
    return subprocess.run(
        [mypy, "--strict", "--python-version", "3.11", "--cache-dir",
         str(directory / ".mypy_cache"), "--no-error-summary", *targets],
        cwd=directory, capture_output=True, text=True, timeout=300,
        env={**os.environ, "MYPYPATH": str(ROOT)})


@pytest.mark.parametrize("schema", [QSD_SCHEMA, FULL_SCHEMA], ids=["qsd", "qemu"])
def test_qemu_clients_pass_mypy_strict(tmp_path: Path, schema: Path) -> None:
    if not schema.is_file():
        pytest.skip(f"no QEMU schema at {schema}")
    write_client(schema, tmp_path, "gen")
    (tmp_path / "good.py").write_text(GOOD_USE.format(pkg="gen"))
    result = mypy_strict(tmp_path, "gen", "good.py")
    assert (result.returncode, result.stdout) == (0, "")
    (tmp_path / "bad.py").write_text(BAD_USE.format(pkg="gen"))
    errors = mypy_strict(tmp_path, "bad.py").stdout.splitlines()
    assert len(errors) == 2, errors
    assert 'Argument "id" to "job_cancel" of "Client" has incompatible type "int"' in errors[0]
    assert 'List comprehension has incompatible type List[str]' in errors[1]


def test_bundled_client_used_as_a_user_would(tmp_path: Path) -> None:
    (tmp_path / "good.py").write_text(GOOD_USE.format(pkg="qjobd.client"))
    result = mypy_strict(tmp_path, "good.py")
    assert (result.returncode, result.stdout) == (0, "")
