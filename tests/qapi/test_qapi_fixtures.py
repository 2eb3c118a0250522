"""Our own schema fixtures: good ones are accepted, bad ones rejected with
exactly the message in the sibling ``.err`` file.

Paths in messages are shown relative to the fixture directory, so ``.err``
files do not depend on where the tree is checked out.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qjobd.qapi import QAPIError, Schema

HERE = Path(__file__).resolve().parent
GOOD = sorted((HERE / "schemas" / "good").glob("*.json"))
BAD = sorted((HERE / "schemas" / "bad").glob("*.json"))


def _message(err: QAPIError, directory: Path) -> str:
    return str(err).replace(f"{directory}/", "") + "\n"


def test_fixtures_exist() -> None:
    assert len(GOOD) >= 5
    assert len(BAD) >= 40


@pytest.mark.parametrize("path", GOOD + BAD, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fixture_says_what_it_checks(path: Path) -> None:
    assert path.read_text().startswith("# "), "fixtures start with a comment"


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.name)
def test_good_schema_is_accepted(path: Path) -> None:
    Schema(str(path))


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.name)
def test_bad_schema_is_rejected_with_expected_message(path: Path) -> None:
    expected = path.with_suffix(".err").read_text()
    assert expected.strip(), "a bad fixture needs a non-empty .err"
    with pytest.raises(QAPIError) as excinfo:
        Schema(str(path))
    assert _message(excinfo.value, path.parent) == expected


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.name)
def test_bad_schema_error_names_file_and_line(path: Path) -> None:
    expected = path.with_suffix(".err").read_text()
    located = [
        line
        for line in expected.splitlines()
        if not line.startswith("In file included from") and ".json:" in line
    ]
    assert any(line.split(":")[1].isdigit() for line in located), expected
