"""A real (not editable) install works: every package and the schema are in it.

The suite itself runs on an editable install, which finds any module in the
checkout; a package missing from setup.cfg only shows in an installed copy (the
QSD command line's ``qjobd.options`` once went missing that way).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from helpers.client import Client
from helpers.daemons import stop, wait_for_socket

ROOT = Path(__file__).resolve().parent.parent


def test_installed_copy_has_every_package_and_serves(tmp_path: Path) -> None:
    # A copy of the sources alone: a build/ directory left in the checkout by an
    # earlier build would hide a package missing from the list.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("qjobd", "schema"):
        shutil.copytree(ROOT / name, source / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--target", str(target),
         str(source)],
        check=True, capture_output=True, timeout=300)
    ours = {path.parent.relative_to(ROOT) for path in (ROOT / "qjobd").rglob("__init__.py")}
    installed = {path.parent.relative_to(target)
                 for path in (target / "qjobd").rglob("__init__.py")}
    assert ours <= installed, sorted(map(str, ours - installed))
    # Run from elsewhere, so only the installed copy can be imported.
    env = {**os.environ, "PYTHONPATH": str(target)}
    socket = tmp_path / "q.sock"
    process = subprocess.Popen(
        [sys.executable, "-m", "qjobd", "--socket", str(socket)], cwd=tmp_path, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_socket(socket, process)
        with Client(socket) as client:
            schema = client.ok("query-qmp-schema")
            assert any(entry.get("name") == "x-job-wait" for entry in schema)
        for module in ("qjobd.qjob.main", "qjobd.clientgen.__main__"):
            shown = subprocess.run([sys.executable, "-m", module, "--help"], cwd=tmp_path,
                                   env=env, capture_output=True, text=True, timeout=60)
            assert shown.returncode == 0, shown.stderr
    finally:
        stop(process)
