"""``python -m qjobd.qapi`` as schema authors use it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

SCHEMAS = Path(__file__).resolve().parent / "schemas"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qjobd.qapi", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_good_file_exits_zero() -> None:
    result = _run(str(SCHEMAS / "good" / "basics.json"))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "basics.json: OK (6 commands, 3 events" in result.stdout


def test_quiet_prints_nothing() -> None:
    result = _run("-q", str(SCHEMAS / "good" / "basics.json"))
    assert result.returncode == 0
    assert result.stdout == ""
    assert result.stderr == ""


def test_bad_file_exits_one_with_location() -> None:
    bad = SCHEMAS / "bad" / "unknown-type.json"
    result = _run(str(bad))
    assert result.returncode == 1
    assert re.search(
        rf"^{re.escape(str(bad))}:3: member 'speed' uses unknown type 'Int'",
        result.stderr,
        re.MULTILINE,
    )


def test_any_bad_file_fails_the_run() -> None:
    result = _run(
        str(SCHEMAS / "good" / "empty.json"),
        str(SCHEMAS / "bad" / "syntax-missing-comma.json"),
    )
    assert result.returncode == 1
    assert "empty.json: OK" in result.stdout
    assert "syntax-missing-comma.json:5:13: expected ',' or '}'" in result.stderr


def test_missing_file() -> None:
    result = _run(str(SCHEMAS / "no-such-schema.json"))
    assert result.returncode == 1
    assert "can't read schema file" in result.stderr


def test_dump_introspect() -> None:
    result = _run(
        "--dump", "introspect", "-D", "CONFIG_MIRROR", str(SCHEMAS / "good" / "basics.json")
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data[0] == {
        "name": "job-create",
        "meta-type": "command",
        "arg-type": "0",
        "ret-type": "1",
    }


def test_dump_text() -> None:
    result = _run("--dump", "text", str(SCHEMAS / "good" / "docs.json"))
    assert result.returncode == 0, result.stderr
    assert "### job-pause" in result.stdout
