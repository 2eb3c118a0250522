"""QEMU's keyval syntax and its typing through the schema (pure, no daemon).

The command-line tests compare whole programs with QSD; these pin the rules one by
one, with QEMU's own examples where ``util/keyval.c`` documents them.
"""

from __future__ import annotations

from typing import Any

import pytest

from qjobd.model.errors import ArgumentError
from qjobd.model.keyval_input import c_double, c_integer, c_size
from qjobd.model.registry import Model
from qjobd.options.getopt import scan
from qjobd.options.keyval import KeyvalError, parse_keyval
from qjobd.qapi.schema import Schema
from qjobd.schema_path import bundled_schema_path
from qjobd.server.daemon import DEFINED_SYMBOLS


@pytest.mark.parametrize(("text", "tree"), [
    ("", {}),
    ("a=1,b=2,", {"a": "1", "b": "2"}),
    ("a=1,a=2", {"a": "2"}),
    ("a.b.c=1,a.b.d=x,,y", {"a": {"b": {"c": "1", "d": "x,y"}}}),
    ("a.1=y,a.0=x", {"a": ["x", "y"]}),
    ("a.0.k=v", {"a": [{"k": "v"}]}),
    ("file,filename=f", {"driver": "file", "filename": "f"}),
    ("a=", {"a": ""}),
    ("__com.example_x=1", {"__com.example_x": "1"}),
])
def test_trees(text: str, tree: dict[str, Any]) -> None:
    assert parse_keyval(text, "driver" if text.startswith("file") else None) == tree


@pytest.mark.parametrize(("text", "message"), [
    ("a.b=1,a=2", "Parameters 'a.*' used inconsistently"),
    ("a=2,a.b=1", "Parameters 'a.*' used inconsistently"),
    ("a.0=1,a.x=2", "Parameters 'a.*' used inconsistently"),
    ("a.1=1", "Parameter 'a.0' missing"),
    ("1=x", "Invalid parameter '1'"),
    (",", "Invalid parameter ''"),
    ("a,b=1", "Expected '=' after parameter 'a'"),
    ("a=1,help", "Help is not available for this option"),
    ("x" * 128 + "=1", f"Parameter '{'x' * 128}' is too long"),
    ("a." + "x" * 128 + "=1", f"Parameter fragment '{'x' * 128}' is too long"),
])
def test_errors(text: str, message: str) -> None:
    with pytest.raises(KeyvalError) as raised:
        parse_keyval(text)
    assert str(raised.value) == message


def test_c_number_syntax() -> None:
    assert c_integer("0x1f", False) == 31
    assert c_integer("017", False) == 15
    assert c_integer(" -5", False) == -5
    assert c_integer("-1", True) == 2**64 - 1
    assert c_integer("9223372036854775808", False) is None
    for bad in ("", "0x", "08", "1k", "1.0", "1 "):
        assert c_integer(bad, False) is None
    assert c_size("1k") == 1024
    assert c_size("1.5M") == 1572864
    assert c_size("0x10") == 16
    assert c_size("512B") == 512
    for bad in ("-1", "1.5", "k", "1Z", "16E"):
        assert c_size(bad) is None
    assert c_double("1.5e3") == 1500.0
    for bad in ("inf", "nan", "1e400", "1_0", "0x1"):
        assert c_double(bad) is None


@pytest.fixture(scope="module")
def model() -> Model:
    return Model(Schema(str(bundled_schema_path())), DEFINED_SYMBOLS)


def test_blockdev_options_typed(model: Model) -> None:
    tree = parse_keyval("raw,node-name=r,read-only=on,offset=0x200,file.driver=file,"
                        "file.filename=f,file.cache.direct=off", "driver")
    assert model.from_keyval("BlockdevOptions", tree) == {
        "driver": "raw", "node-name": "r", "read-only": True, "offset": 512,
        "file": {"driver": "file", "filename": "f", "cache": {"direct": False}}}
    # A string for an alternate takes its string branch: a node reference.
    assert model.from_keyval("BlockdevOptions", parse_keyval("raw,file=base", "driver"))[
        "file"] == "base"


@pytest.mark.parametrize(("text", "message"), [
    ("nope", "Parameter 'driver' does not accept value 'nope'"),
    ("raw,offset=abc,file=f", "Parameter 'offset' expects integer"),
    ("raw,read-only=maybe,file=f", "Parameter 'read-only' expects 'on' or 'off'"),
    ("raw,cache=x,file=f", "Invalid parameter type for 'cache', expected: object"),
    ("raw,read-only.x=1,file=f", "Parameters 'read-only.*' are unexpected"),
    ("raw,file.driver=file", "Parameter 'file.filename' is missing"),
    ("raw,offset=x", "Parameter 'file' is missing"),  # visiting order: file first
    ("raw,file=f,bogus=1", "Parameter 'bogus' is unexpected"),
])
def test_blockdev_option_errors(model: Model, text: str, message: str) -> None:
    with pytest.raises(ArgumentError) as raised:
        model.from_keyval("BlockdevOptions", parse_keyval(text, "driver"))
    assert str(raised.value) == message


def test_getopt_forms() -> None:
    items, mistake = scan(["--blo=x", "--chardev", "y", "-hV", "stray", "--", "--bogus"])
    assert mistake is None
    assert [(i.option.name, i.value, i.location) for i in items] == [
        ("blockdev", "x", "--blo=x"), ("chardev", "y", "--chardev y"),
        ("help", None, "-hV"), ("version", None, "-hV"), ("", "stray", "stray")]
    items, mistake = scan(["-h", "--nope", "-V"])
    assert [i.option.name for i in items] == ["help"]
    assert str(mistake) == "unrecognized option '--nope'"
