"""Tests for :mod:`qjobd.protocol.jsonstream`, the QMP input decoder.

The ``RECORDED`` table below was recorded from a real qemu-storage-daemon 7.2
(``qemu-storage-daemon --chardev socket,...,server=on,wait=off,id=c0 --monitor
chardev=c0``, Debian package 1:7.2+dfsg-7+deb12u18): for each input we opened a fresh
connection, sent ``{"execute":"qmp_capabilities"}``, then the input bytes, and wrote
down every reply line (QSD ends lines with CRLF; the CR is left out here).  The tests
turn the decoder's output back into those reply lines with a tiny stand-in for the
dispatcher (``query-jobs`` returns ``[]``, anything that is not an object is "QMP
input must be a JSON object", parse errors are GenericError) and QEMU's JSON writer,
so number conversion and string handling are checked down to the wire text.

``HUGE`` (64 MiB tokens, 2 Mi tokens, 100 MiB that never ends) was recorded the same
way.  ``test_live_qsd_agrees`` replays the table, plus random streams, against a
qemu-storage-daemon started for the test when one is installed.

Speed: ``python contrib/bench/jsonstream_speed.py`` prints values/s for a
``{"execute": "query-jobs", "id": 17}`` stream, fed in 4 KiB chunks and one line
per feed, with the fast path on and off.
"""

from __future__ import annotations

import contextlib
import json
import random
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers.wire import Wire
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qjobd.protocol import jsonstream
from qjobd.protocol.jsonstream import (
    MAX_NESTING,
    MAX_TOKEN_COUNT,
    MAX_TOKEN_SIZE,
    JSONParseError,
    JSONStreamDecoder,
)

# Section: turning decoder output into QSD's reply text


def _quote(text: str) -> str:
    """A string as QEMU's JSON writer prints it."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif char in "\b\f\n\r\t":
            out.append({"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}[char])
        elif code > 0xFFFF:
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04X}\\u{0xDC00 + (code & 0x3FF):04X}")
        elif code < 0x20 or code >= 0x7F:
            out.append(f"\\u{code:04X}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _wire(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.17g}"
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, list):
        return "[" + ", ".join(_wire(item) for item in value) + "]"
    raise TypeError(value)


def E(desc: str) -> str:  # table shorthand
    """A GenericError reply; ``desc`` is the wire text between the quotes."""
    return '{"error": {"class": "GenericError", "desc": "' + desc + '"}}'


def R(request_id: str | None = None) -> str:  # table shorthand
    """A query-jobs reply; ``request_id`` is the echoed id as wire text."""
    if request_id is None:
        return '{"return": []}'
    return '{"return": [], "id": ' + request_id + "}"


NOT_OBJECT = E("QMP input must be a JSON object")


def reply(item: object) -> str:
    """What QSD answers to one decoded item (for the shapes the table uses)."""
    if isinstance(item, JSONParseError):
        return E(_quote(item.message)[1:-1])
    if type(item) is not dict:
        return NOT_OBJECT
    if not item:
        return E("QMP input lacks member 'execute'")
    if set(item) <= {"execute", "id"} and item.get("execute") == "query-jobs":
        return R(_wire(item["id"])) if "id" in item else R()
    if len(item) == 1 and "execute" not in item:
        return E(f"QMP input member '{next(iter(item))}' is unexpected")
    raise AssertionError(f"the table has no rule for {item!r}")


def Q(id_text: bytes) -> bytes:  # table shorthand
    """A query-jobs command line whose id is ``id_text`` verbatim."""
    return b'{"execute":"query-jobs","id":' + id_text + b"}\n"


# Section: the table recorded from qemu-storage-daemon 7.2

# fmt: off
RECORDED: list[tuple[bytes, list[str]]] = [
    (b'garbage\n', [E(r"JSON parse error, invalid keyword 'garbage'")]),
    (b'truefalse\n', [E(r"JSON parse error, invalid keyword 'truefalse'")]),
    (b'True\n', [E(r"JSON parse error, stray 'T'")]),
    (b'tRue\n', [E(r"JSON parse error, invalid keyword 't'"), E(r"JSON parse error, stray 'R'")]),
    (b'nan\n', [E(r"JSON parse error, invalid keyword 'nan'")]),
    (b'NaN\n', [E(r"JSON parse error, stray 'N'")]),
    (b'Infinity\n', [E(r"JSON parse error, stray 'I'")]),
    (b'-Infinity\n', [E(r"JSON parse error, stray '-I'")]),
    (b'undefined\n', [E(r"JSON parse error, invalid keyword 'undefined'")]),
    (
        b'garbage garbage\n',
        [
            E(r"JSON parse error, invalid keyword 'garbage'"),
            E(r"JSON parse error, invalid keyword 'garbage'"),
        ],
    ),
    (
        b'garbage{"execute":"query-jobs"}\n',
        [
            E(r"JSON parse error, invalid keyword 'garbage'"),
            R(),
        ],
    ),
    (b'true\n', [NOT_OBJECT]),
    (b'null\n', [NOT_OBJECT]),
    (b'false\n', [NOT_OBJECT]),
    (b'42\n', [NOT_OBJECT]),
    (b'-0\n', [NOT_OBJECT]),
    (b'"str"\n', [NOT_OBJECT]),
    (b"'str'\n", [NOT_OBJECT]),
    (b'[]\n', [NOT_OBJECT]),
    (b'{}\n', [E(r"QMP input lacks member 'execute'")]),
    (b'[1, 2]\n', [NOT_OBJECT]),
    (b'1 2 3\n', [NOT_OBJECT, NOT_OBJECT, NOT_OBJECT]),
    (b'"a""b"\n', [NOT_OBJECT, NOT_OBJECT]),
    (b'truenull\n', [E(r"JSON parse error, invalid keyword 'truenull'")]),
    (b'true false\n', [NOT_OBJECT, NOT_OBJECT]),
    (b'}\n', [E(r"JSON parse error, expecting value")]),
    (b']\n', [E(r"JSON parse error, expecting value")]),
    (b':\n', [E(r"JSON parse error, expecting value")]),
    (b',\n', [E(r"JSON parse error, expecting value")]),
    (b'{"execute":"query-jobs"}}\n', [R(), E(r"JSON parse error, expecting value")]),
    (b'[1]]\n', [NOT_OBJECT, E(r"JSON parse error, expecting value")]),
    (b'{]\n', [E(r"JSON parse error, expecting value")]),
    (b'[}\n', [E(r"JSON parse error, expecting value")]),
    (b'{"a":1]\n', [E(r"JSON parse error, expected separator in dict")]),
    (b'[1}\n', [E(r"JSON parse error, expected separator in list")]),
    (b'{"execute":"query-jobs",}\n', [E(r"JSON parse error, expecting value")]),
    (b'[1,]\n', [E(r"JSON parse error, expecting value")]),
    (b'[,1]\n', [E(r"JSON parse error, expecting value")]),
    (b'{,}\n', [E(r"JSON parse error, expecting value")]),
    (b'{"a"}\n', [E(r"JSON parse error, missing : in object pair")]),
    (b'{"a" 1}\n', [E(r"JSON parse error, missing : in object pair")]),
    (b'{"a":}\n', [E(r"JSON parse error, expecting value")]),
    (b'{1:2}\n', [E(r"JSON parse error, key is not a string in object")]),
    (b'{true:1}\n', [E(r"JSON parse error, key is not a string in object")]),
    (b'{abc:1}\n', [E(r"JSON parse error, invalid keyword 'abc'")]),
    (b'{{}:1}\n', [E(r"JSON parse error, key is not a string in object")]),
    (b'{[1,]:1}\n', [E(r"JSON parse error, expecting value")]),
    (b'{"a":1 "b":2}\n', [E(r"JSON parse error, expected separator in dict")]),
    (b'[1 2]\n', [E(r"JSON parse error, expected separator in list")]),
    (b'{"a" : [ } ]\n', [E(r"JSON parse error, expecting value")]),
    (b'[ { ] }\n', [E(r"JSON parse error, expecting value")]),
    (b'{"a":1,"a":2}\n', [E(r"JSON parse error, duplicate key")]),
    (b'{"execute":"query-jobs","execute":"query-jobs"}\n', [E(r"JSON parse error, duplicate key")]),
    (b'{"a":1,"a":tru}\n', [E(r"JSON parse error, invalid keyword 'tru'")]),
    (b'{"a":1,"a":1,"b"}\n', [E(r"JSON parse error, duplicate key")]),
    (b'{"execute": "query-jobs"}{"execute": "query-jobs"}\n', [R(), R()]),
    (Q(b'1}  {"execute":"query-jobs","id":2'), [R(r"1"), R(r"2")]),
    (b'{"execute":\n"query-jobs",\n"id":\n3}\n', [R(r"3")]),
    (b'{"execute":"query-jobs","id":1}{"execute":', [R(r"1")]),
    (b'{"execute":"query-jobs","id":1}\n{"execute":\n\n"query-jobs"\n\n}\n', [R(r"1"), R()]),
    (b"{'execute': 'query-jobs'}\n", [R()]),
    (b'{\'execute\':\'query-jobs\',\'id\':\'it\\\'s "q"\'}\n', [R('"it\'s \\"q\\""')]),
    (Q(b'"it\'s \\\'q\\\'"'), [R('"it\'s \'q\'"')]),
    (b' \t\r\n{"execute":"query-jobs"}\r\n', [R()]),
    (b'\xef\xbb\xbf{"execute":"query-jobs"}\n', [E(r"JSON parse error, stray '\uFFFD'"), R()]),
    (b'\x0b{"execute":"query-jobs"}\n', [E(r"JSON parse error, stray '\u000B'"), R()]),
    (b'\x0c\n', [E(r"JSON parse error, stray '\f'")]),
    (b'\xc2\xa0{"execute":"query-jobs"}\n', [E(r"JSON parse error, stray '\uFFFD'"), R()]),
    (b'\x00{"execute":"query-jobs"}\n', [E(r"JSON parse error, stray ''"), R()]),
    (
        b'\x00\x00\x00\n',
        [
            E(r"JSON parse error, stray ''"),
            E(r"JSON parse error, stray ''"),
            E(r"JSON parse error, stray ''"),
        ],
    ),
    (b'\x7f\n', [E(r"JSON parse error, stray '\u007F'")]),
    (b'\n\n\n', []),
    (b'"abc\n', [E(r"JSON parse error, stray '\"abc\n'")]),
    (b'"abc\ngarbage\n{"execute":"query-jobs"}\n', [E(r"JSON parse error, stray '\"abc\n'"), R()]),
    (b'"abc\n{"execute":"query-jobs"}\n', [E(r"JSON parse error, stray '\"abc\n'"), R()]),
    (
        b'{"execute":"query-jobs\n{"execute":"query-jobs"}\n',
        [
            E(r"JSON parse error, stray '\"query-jobs\n'"),
            R(),
        ],
    ),
    (b"'abc\n", [E(r"JSON parse error, stray ''abc\n'")]),
    (
        Q(b'"a\tb"'),
        [
            E(r"JSON parse error, stray '\"a\t'"),
            E(r"JSON parse error, expecting value"),
        ],
    ),
    (
        Q(b'"a\x01b"'),
        [
            E(r"JSON parse error, stray '\"a\u0001'"),
            E(r"JSON parse error, expecting value"),
        ],
    ),
    (
        Q(b'"a\x00b"'),
        [
            E(r"JSON parse error, stray '\"a'"),
            E(r"JSON parse error, expecting value"),
        ],
    ),
    (Q(b'"a\x7fb"'), [R(r'"a\u007Fb"')]),
    (
        b'"abc\x01def" {"execute":"query-jobs"}\n',
        [
            E(r"JSON parse error, stray '\"abc\u0001'"),
            R(),
        ],
    ),
    (b'"abc\x01def{"execute":"query-jobs"}\n', [E(r"JSON parse error, stray '\"abc\u0001'"), R()]),
    (Q(b'"\\q"'), [E(r"JSON parse error, invalid escape sequence in string")]),
    (Q(b'"\\x41"'), [E(r"JSON parse error, invalid escape sequence in string")]),
    (Q(b'"\\U0041"'), [E(r"JSON parse error, invalid escape sequence in string")]),
    (Q(b'"\\/\\b\\f\\n\\r\\t\\"\\\\\\\'"'), [R('"/\\b\\f\\n\\r\\t\\"\\\\\'"')]),
    (Q(b'"\\u0041\\u00e9\\u00E9\\u20ac"'), [R(r'"A\u00E9\u00E9\u20AC"')]),
    (Q(b'"\\u0000"'), [R(r'"\u0000"')]),
    (Q(b'"a\\u0000b"'), [R(r'"a\u0000b"')]),
    (Q(b'"\\uD800"'), [E(r"JSON parse error, \\uD800 is not a valid Unicode character")]),
    (Q(b'"\\uDC00"'), [E(r"JSON parse error, \\uDC00 is not a valid Unicode character")]),
    (Q(b'"\\uD83D\\uDE00"'), [R(r'"\uD83D\uDE00"')]),
    (Q(b'"\\ud83d\\ude00"'), [R(r'"\uD83D\uDE00"')]),
    (Q(b'"\\uD800\\u0041"'), [E(r"JSON parse error, \\uD800 is not a valid Unicode character")]),
    (Q(b'"\\uD800\\uZZZZ"'), [E(r"JSON parse error, \\uD800 is not a valid Unicode character")]),
    (Q(b'"\\uD800x"'), [E(r"JSON parse error, \\uD800 is not a valid Unicode character")]),
    (
        Q(b'"\\uDBFF\\uDFFF"'),
        [
            E(r"JSON parse error, \\uDBFF\\uDFFF is not a valid Unicode character"),
        ],
    ),
    (
        Q(b'"\\uD83F\\uDFFE"'),
        [
            E(r"JSON parse error, \\uD83F\\uDFFE is not a valid Unicode character"),
        ],
    ),
    (Q(b'"\\uZZZZ"'), [E(r"JSON parse error, \\uZZZZ is not a valid Unicode character")]),
    (Q(b'"\\u12"'), [E(r"JSON parse error, \\u12\" is not a valid Unicode character")]),
    (Q(b'"\\u1"'), [E(r"JSON parse error, \\u1\" is not a valid Unicode character")]),
    (Q(b'"\\u12\xc3\xa9"'), [E(r"JSON parse error, \\u12\u00E9 is not a valid Unicode character")]),
    (Q(b'"\\uFFFE"'), [E(r"JSON parse error, \\uFFFE is not a valid Unicode character")]),
    (Q(b'"\\uFFFF"'), [E(r"JSON parse error, \\uFFFF is not a valid Unicode character")]),
    (Q(b'"\\uFDD0"'), [E(r"JSON parse error, \\uFDD0 is not a valid Unicode character")]),
    (Q(b'"\\uFDEF"'), [E(r"JSON parse error, \\uFDEF is not a valid Unicode character")]),
    (Q(b'"\\uFDF0"'), [R(r'"\uFDF0"')]),
    (Q(b'"\\uFFFD"'), [R(r'"\uFFFD"')]),
    (Q(b'"\\\xc3\xa9"'), [E(r"JSON parse error, invalid escape sequence in string")]),
    (
        Q(b'"\\\ta"'),
        [
            E(r"JSON parse error, stray '\"\\\t'"),
            E(r"JSON parse error, expecting value"),
        ],
    ),
    (Q(b'"\\q\\uD800"'), [E(r"JSON parse error, invalid escape sequence in string")]),
    (Q(b'"\\uD800\\q"'), [E(r"JSON parse error, \\uD800 is not a valid Unicode character")]),
    (Q(b'"\\q\xc3"'), [E(r"JSON parse error, invalid escape sequence in string")]),
    (Q(b'"\xc3\\q"'), [E(r"JSON parse error, invalid UTF-8 sequence in string")]),
    (Q(b'"%s%d"'), [R(r'"%s%d"')]),
    (b'%d\n', [E(r"JSON parse error, stray '%'")]),
    (Q(b'%d'), [E(r"JSON parse error, stray '%'"), E(r"JSON parse error, expecting value")]),
    (Q(b'"\xc3\xa9"'), [R(r'"\u00E9"')]),
    (Q(b'"\xe2\x82\xac\xf0\x9f\x98\x80"'), [R(r'"\u20AC\uD83D\uDE00"')]),
    (Q(b'"\xc3"'), [E(r"JSON parse error, invalid UTF-8 sequence in string")]),
    (Q(b'"\xc3("'), [E(r"JSON parse error, invalid UTF-8 sequence in string")]),
    (Q(b'"\xe2\x82"'), [E(r"JSON parse error, invalid UTF-8 sequence in string")]),
    (Q(b'"\xc0\x80"'), [R(r'"\u0000"')]),
    (Q(b'"a\xc0\x80b"'), [R(r'"a\u0000b"')]),
    (Q(b'"\xc0\xaf"'), [E(r"JSON parse error, invalid UTF-8 sequence in string")]),
    (Q(b'"\xc1\xbf"'), [E(r"JSON parse error, invalid UTF-8 sequence in string")]),
    (Q(b'"\xe0\x80\x80"'), [E(r"JSON parse error, invalid UTF-8 sequence in string")]),
    (Q(b'"\xed\xa0\x80"'), [E(r"JSON parse error, invalid UTF-8 sequence in string")]),
    (Q(b'"\xef\xbf\xbe"'), [E(r"JSON parse error, invalid UTF-8 sequence in string")]),
    (Q(b'"\xef\xb7\x90"'), [E(r"JSON parse error, invalid UTF-8 sequence in string")]),
    (Q(b'"\xf0\x9f\xbf\xbe"'), [E(r"JSON parse error, invalid UTF-8 sequence in string")]),
    (Q(b'"\xf4\x8f\xbf\xbf"'), [E(r"JSON parse error, invalid UTF-8 sequence in string")]),
    (Q(b'"\xf4\x90\x80\x80"'), [E(r"JSON parse error, invalid UTF-8 sequence in string")]),
    (Q(b'"\xf8\x88\x80\x80\x80"'), [E(r"JSON parse error, invalid UTF-8 sequence in string")]),
    (Q(b'"\xfc\x84\x80\x80\x80\x80"'), [E(r"JSON parse error, invalid UTF-8 sequence in string")]),
    (Q(b'"\x80"'), [E(r"JSON parse error, invalid UTF-8 sequence in string")]),
    (Q(b'"\xbf"'), [E(r"JSON parse error, invalid UTF-8 sequence in string")]),
    (
        Q(b'"\xfe"'),
        [
            E(r"JSON parse error, stray '\"\uFFFD'"),
            E(r"JSON parse error, expecting value"),
        ],
    ),
    (
        Q(b'"\xff"'),
        [
            E(r"JSON parse error, stray '\"\uFFFD'"),
            E(r"JSON parse error, expecting value"),
        ],
    ),
    (Q(b'"\xfd"'), [E(r"JSON parse error, invalid UTF-8 sequence in string")]),
    (b'\x80\n', [E(r"JSON parse error, stray '\uFFFD'")]),
    (b'\xff\n', [E(r"JSON parse error, stray '\uFFFD'")]),
    (b'\xfe\n', [E(r"JSON parse error, stray '\uFFFD'")]),
    (b'\xc3\xa9\n', [E(r"JSON parse error, stray '\uFFFD'")]),
    (b'\xf8\x88\x80\x80\x80\n', [E(r"JSON parse error, stray '\uFFFD'")]),
    (
        b'{"execute":"query-jobs",\xff{"execute":"query-jobs","id":9}\n',
        [
            E(r"JSON parse error, stray '\uFFFD'"),
            R(r"9"),
        ],
    ),
    (
        b'{"execute":"query-jobs",\xff\xff\xff\n',
        [
            E(r"JSON parse error, stray '\uFFFD'"),
            E(r"JSON parse error, stray '\uFFFD'"),
            E(r"JSON parse error, stray '\uFFFD'"),
        ],
    ),
    (b'\xe2\x82\xac\n', [E(r"JSON parse error, stray '\uFFFD'")]),
    (b'"\xc3\xa9\x01"\n', [E(r"JSON parse error, stray '\"\u00E9\u0001'")]),
    (b'"\xe2\x82\x01"\n', [E(r"JSON parse error, stray '\"\uFFFD\u0001'")]),
    (b'"\xf8\x88\x80\x80\x80\x01"\n', [E(r"JSON parse error, stray '\"\uFFFD\u0001'")]),
    (b'"\xc0\x80\x01"\n', [E(r"JSON parse error, stray '\"\u0000\u0001'")]),
    (b'"\xef\xbf\xbe\x01"\n', [E(r"JSON parse error, stray '\"\uFFFD\u0001'")]),
    (Q(b'0'), [R(r"0")]),
    (Q(b'-0'), [R(r"0")]),
    (Q(b'1'), [R(r"1")]),
    (Q(b'-1'), [R(r"-1")]),
    (Q(b'9223372036854775807'), [R(r"9223372036854775807")]),
    (Q(b'9223372036854775808'), [R(r"9223372036854775808")]),
    (Q(b'-9223372036854775808'), [R(r"-9223372036854775808")]),
    (Q(b'-9223372036854775809'), [R(r"-9.2233720368547758e+18")]),
    (Q(b'18446744073709551615'), [R(r"18446744073709551615")]),
    (Q(b'18446744073709551616'), [R(r"1.8446744073709552e+19")]),
    (Q(b'-18446744073709551615'), [R(r"-1.8446744073709552e+19")]),
    (Q(b'-18446744073709551616'), [R(r"-1.8446744073709552e+19")]),
    (Q(b'123456789012345678901234567890'), [R(r"1.2345678901234568e+29")]),
    (Q(b'1e400'), [R(r"inf")]),
    (Q(b'-1e400'), [R(r"-inf")]),
    (Q(b'1e-400'), [R(r"0")]),
    (Q(b'2.5e-324'), [R(r"4.9406564584124654e-324")]),
    (Q(b'5e-324'), [R(r"4.9406564584124654e-324")]),
    (Q(b'1.5'), [R(r"1.5")]),
    (Q(b'-0.0'), [R(r"-0")]),
    (Q(b'0.0'), [R(r"0")]),
    (Q(b'0.1'), [R(r"0.10000000000000001")]),
    (Q(b'1E2'), [R(r"100")]),
    (Q(b'1e+2'), [R(r"100")]),
    (Q(b'1e-2'), [R(r"0.01")]),
    (Q(b'1.0'), [R(r"1")]),
    (Q(b'0.5e3'), [R(r"500")]),
    (Q(b'-0.5E-3'), [R(r"-0.00050000000000000001")]),
    (Q(b'9007199254740993'), [R(r"9007199254740993")]),
    (Q(b'9007199254740993.0'), [R(r"9007199254740992")]),
    (Q(b'1.7976931348623157e308'), [R(r"1.7976931348623157e+308")]),
    (Q(b'1.7976931348623159e308'), [R(r"inf")]),
    (Q(b'0e5'), [E(r"JSON parse error, expected separator in dict")]),
    (Q(b'0E5'), [E(r"JSON parse error, stray 'E'"), E(r"JSON parse error, expecting value")]),
    (Q(b'-0e5'), [E(r"JSON parse error, expected separator in dict")]),
    (Q(b'0e'), [E(r"JSON parse error, expected separator in dict")]),
    (Q(b'01'), [E(r"JSON parse error, stray '01'"), E(r"JSON parse error, expecting value")]),
    (Q(b'00'), [E(r"JSON parse error, stray '00'"), E(r"JSON parse error, expecting value")]),
    (Q(b'-01'), [E(r"JSON parse error, stray '-01'"), E(r"JSON parse error, expecting value")]),
    (Q(b'-'), [E(r"JSON parse error, stray '-}'")]),
    (Q(b'-a'), [E(r"JSON parse error, stray '-a'"), E(r"JSON parse error, expecting value")]),
    (Q(b'1.'), [E(r"JSON parse error, stray '1.}'")]),
    (Q(b'1.e5'), [E(r"JSON parse error, stray '1.e'"), E(r"JSON parse error, expecting value")]),
    (Q(b'.5'), [E(r"JSON parse error, stray '.'"), E(r"JSON parse error, expecting value")]),
    (Q(b'+1'), [E(r"JSON parse error, stray '+'"), E(r"JSON parse error, expecting value")]),
    (Q(b'1e'), [E(r"JSON parse error, stray '1e}'")]),
    (Q(b'1e+'), [E(r"JSON parse error, stray '1e+}'")]),
    (Q(b'1ea'), [E(r"JSON parse error, stray '1ea'"), E(r"JSON parse error, expecting value")]),
    (Q(b'0x10'), [E(r"JSON parse error, expected separator in dict")]),
    (Q(b'1a'), [E(r"JSON parse error, expected separator in dict")]),
    (Q(b'1-2'), [E(r"JSON parse error, expected separator in dict")]),
    (Q(b'1.5.5'), [E(r"JSON parse error, stray '.'"), E(r"JSON parse error, expecting value")]),
    (Q(b'--1'), [E(r"JSON parse error, stray '--'"), E(r"JSON parse error, expecting value")]),
    (Q(b'1 2'), [E(r"JSON parse error, expected separator in dict")]),
    (b'0x10\n', [NOT_OBJECT, E(r"JSON parse error, invalid keyword 'x'"), NOT_OBJECT]),
    (b'01\n', [E(r"JSON parse error, stray '01'")]),
    (b'-\n', [E(r"JSON parse error, stray '-\n'")]),
    (b'-\n{"execute":"query-jobs"}\n', [E(r"JSON parse error, stray '-\n'"), R()]),
    (b'1.\n', [E(r"JSON parse error, stray '1.\n'")]),
    (b'1e\n', [E(r"JSON parse error, stray '1e\n'")]),
    (b'1e+\n{"execute":"query-jobs"}\n', [E(r"JSON parse error, stray '1e+\n'"), R()]),
    (b'1.5.5\n', [NOT_OBJECT, E(r"JSON parse error, stray '.'")]),
    (b'-0.0\n', [NOT_OBJECT]),
    (b'12abc\n', [NOT_OBJECT, E(r"JSON parse error, invalid keyword 'abc'")]),
    (b'1"a"\n', [NOT_OBJECT, NOT_OBJECT]),
    (b'1{"execute":"query-jobs"}\n', [NOT_OBJECT, R()]),
    (b'@@@ {"execute":"query-jobs","id":1}\n', [E(r"JSON parse error, stray '@'"), R(r"1")]),
    (b'@abc"def{"execute":"query-jobs"}\n', [E(r"JSON parse error, stray '@'"), R()]),
    (b'@abc"def\n{"execute":"query-jobs"}\n', [E(r"JSON parse error, stray '@'"), R()]),
    (b'@\tabc\n', [E(r"JSON parse error, stray '@'")]),
    (b'{"a": @}\n', [E(r"JSON parse error, stray '@'"), E(r"JSON parse error, expecting value")]),
    (
        Q(b'[1,@,2]'),
        [
            E(r"JSON parse error, stray '@'"),
            E(r"JSON parse error, expecting value"),
            NOT_OBJECT,
            E(r"JSON parse error, expecting value"),
            E(r"JSON parse error, expecting value"),
        ],
    ),
    (
        Q(b'[1,@x:2]'),
        [
            E(r"JSON parse error, stray '@'"),
            E(r"JSON parse error, expecting value"),
            NOT_OBJECT,
            E(r"JSON parse error, expecting value"),
            E(r"JSON parse error, expecting value"),
        ],
    ),
    (
        b'[1,2,@\n3]\n',
        [
            E(r"JSON parse error, stray '@'"),
            NOT_OBJECT,
            E(r"JSON parse error, expecting value"),
        ],
    ),
    (b'@ garbage\n', [E(r"JSON parse error, stray '@'")]),
    (
        b'@, garbage\n',
        [
            E(r"JSON parse error, stray '@'"),
            E(r"JSON parse error, expecting value"),
            E(r"JSON parse error, invalid keyword 'garbage'"),
        ],
    ),
    (
        b'@:true\n',
        [
            E(r"JSON parse error, stray '@'"),
            E(r"JSON parse error, expecting value"),
            NOT_OBJECT,
        ],
    ),
    (b'A\n', [E(r"JSON parse error, stray 'A'")]),
    (b'ABC[1]\n', [E(r"JSON parse error, stray 'A'"), NOT_OBJECT]),
    (
        b'{"execute":"query-jobs", "id": 1, "arguments": {"a": [1, {"b": @}]}}\n',
        [
            E(r"JSON parse error, stray '@'"),
            E(r"JSON parse error, expecting value"),
            E(r"JSON parse error, expecting value"),
            E(r"JSON parse error, expecting value"),
            E(r"JSON parse error, expecting value"),
        ],
    ),
    (
        b'\x01\x02\x03\n',
        [
            E(r"JSON parse error, stray '\u0001'"),
            E(r"JSON parse error, stray '\u0002'"),
            E(r"JSON parse error, stray '\u0003'"),
        ],
    ),
    (b'"a\x00b"\n', [E(r"JSON parse error, stray '\"a'")]),

]
# fmt: on

QJ = b'{"execute":"query-jobs"}\n'
EXPECTING = E("JSON parse error, expecting value")
NESTING = E("JSON nesting depth limit exceeded")
TOO_BIG = E("JSON token size limit exceeded")
TOO_MANY = E("JSON token count limit exceeded")

# Also recorded from QSD 7.2; written with expressions because they are long.
RECORDED_LONG: list[tuple[bytes, list[str]]] = [
    # Parser messages go through a 1024-byte buffer: 1023 bytes survive.
    (b"a" * 2000 + b"\n", [E("JSON parse error, invalid keyword '" + "a" * 1006)]),
    (b"[" + b"a" * 2000 + b"]\n", [E("JSON parse error, invalid keyword '" + "a" * 1006)]),
    (
        b'"\\uD800' + b"a" * 2000 + b'"\n',
        [E(r"JSON parse error, \\uD800 is not a valid Unicode character")],
    ),
    # Nesting: 1024 levels are fine, the 1025th opener is refused and everything
    # pending is dropped, so each of the closers that follow is a stray value.
    (
        b'{"execute":"query-jobs","id":' + b"[" * 1023 + b"]" * 1023 + b"}\n",
        [R("[" * 1023 + "]" * 1023)],
    ),
    (
        b'{"execute":"query-jobs","id":' + b"[" * 1024 + b"]" * 1024 + b"}\n",
        [NESTING] + [EXPECTING] * 1025,
    ),
    (b"[" * 1024 + b"]" * 1024 + b"\n", [NOT_OBJECT]),
    (b"[" * 1025 + b"]" * 1025 + b"\n", [NESTING] + [EXPECTING] * 1025),
    (b'{"a":' * 1024 + b"1" + b"}" * 1024 + b"\n", [E("QMP input member 'a' is unexpected")]),
    (
        b'{"a":' * 1025 + b"1" + b"}" * 1025 + b"\n",
        # after the refused 1025th "{": "a", ":", 1, then 1025 lone "}"
        [NESTING, NOT_OBJECT, EXPECTING, NOT_OBJECT] + [EXPECTING] * 1025,
    ),
    (b"[{" * 512 + b"}]" * 512 + b"\n", [E("JSON parse error, key is not a string in object")]),
    (b"[{" * 512 + b"[]" + b"}]" * 512 + b"\n", [NESTING] + [EXPECTING] * 1025),
]

_MIB = 1 << 20


def _string_token(total: int) -> bytes:
    """A string token of ``total`` bytes, quotes included."""
    return b'"' + b"a" * (total - 2) + b'"'


# Recorded from QSD 7.2 as well (each takes QSD minutes: its monitor reads one byte
# per main-loop iteration).  Built lazily: some are 100 MiB.
HUGE: dict[str, tuple[Callable[[], bytes], list[str]]] = {
    "string of 64 MiB - 1 bytes": (
        lambda: _string_token(MAX_TOKEN_SIZE - 1) + b"\n",
        [NOT_OBJECT],
    ),
    "string of 64 MiB": (lambda: _string_token(MAX_TOKEN_SIZE) + b"\n", [TOO_BIG]),
    "string of 64 MiB + 1": (lambda: _string_token(MAX_TOKEN_SIZE + 1) + b"\n", [TOO_BIG]),
    # The lexer gives up once the unfinished token passes 64 MiB and starts afresh,
    # so the closing quote opens a new string that the newline breaks.
    "string of 64 MiB + 2": (
        lambda: _string_token(MAX_TOKEN_SIZE + 2) + b"\n",
        [TOO_BIG, E(r"JSON parse error, stray '\"\n'")],
    ),
    # 100 MiB that never close: one limit error, then the rest is read as a keyword.
    "unterminated 100 MiB string": (
        lambda: b'"' + b"a" * (100 * _MIB) + b"\n" + QJ,
        [TOO_BIG, E("JSON parse error, invalid keyword '" + "a" * 1006), R()],
    ),
    "2 Mi tokens": (lambda: b"[" + b"0," * (_MIB - 2) + b"[]]\n", [NOT_OBJECT]),
    "2 Mi + 1 tokens": (lambda: b"[" + b"0," * (_MIB - 1) + b"0]\n", [TOO_MANY]),
    "2 Mi + 3 tokens": (
        lambda: b"[" + b"0," * _MIB + b"0]\n",
        [TOO_MANY, NOT_OBJECT, EXPECTING],
    ),
    "array of 64 MiB - 1 token bytes": (
        lambda: b"[" + _string_token(32 * _MIB) + b"," + _string_token(32 * _MIB - 4) + b"]\n",
        [NOT_OBJECT],
    ),
    "array of 64 MiB token bytes": (
        lambda: b"[" + _string_token(32 * _MIB) + b"," + _string_token(32 * _MIB - 3) + b"]\n",
        [TOO_BIG],
    ),
    "keyword of 64 MiB": (lambda: b"a" * MAX_TOKEN_SIZE + b"\n", [TOO_BIG]),
    "keyword of 64 MiB + 1": (lambda: b"a" * (MAX_TOKEN_SIZE + 1) + b"\n", [TOO_BIG]),
}


# Section: helpers


def decode(data: bytes, *, fast: bool = True, cuts: list[int] | None = None) -> list[object]:
    """Feed ``data`` to a new decoder in pieces of the given sizes (the rest last)."""
    decoder = JSONStreamDecoder(fast_path=fast)
    out: list[object] = []
    pos = 0
    for size in cuts or ():
        out += decoder.feed(data[pos : pos + size])
        pos += size
    out += decoder.feed(data[pos:])
    return out


def one_byte_at_a_time(data: bytes, *, fast: bool) -> list[object]:
    decoder = JSONStreamDecoder(fast_path=fast)
    out: list[object] = []
    for index in range(len(data)):
        out += decoder.feed(data[index : index + 1])
    return out


@contextlib.contextmanager
def small_limits(size: int = 200, count: int = 40, nesting: int = 6) -> Iterator[None]:
    """Shrink QEMU's limits so random input reaches them."""
    values = {
        "MAX_TOKEN_SIZE": size,
        "MAX_TOKEN_COUNT": count,
        "MAX_NESTING": nesting,
        "_FAST_SHALLOW": nesting,
        "_FAST_MAX_SIZE": min(count, size - 1),
    }
    saved = {name: getattr(jsonstream, name) for name in values}
    for name, value in values.items():
        setattr(jsonstream, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(jsonstream, name, value)


@pytest.fixture(autouse=True)
def _deep_recursion() -> Iterator[None]:
    # Only for _wire() on the 1023-deep id; the decoder itself does not recurse.
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 5000))
    yield
    sys.setrecursionlimit(old)


# Section: QSD's replies, byte for byte


def _case_id(data: bytes) -> str:
    text = repr(data)[2:-1]
    return text if len(text) <= 60 else text[:57] + "..."


@pytest.mark.parametrize(
    ("data", "replies"),
    RECORDED + RECORDED_LONG,
    ids=[_case_id(data) for data, _ in RECORDED + RECORDED_LONG],
)
def test_recorded_from_qsd(data: bytes, replies: list[str]) -> None:
    for fast in (True, False):
        assert [reply(item) for item in decode(data, fast=fast)] == replies
        assert [reply(item) for item in one_byte_at_a_time(data, fast=fast)] == replies


@pytest.mark.parametrize("name", list(HUGE))
def test_recorded_limits(name: str) -> None:
    build, replies = HUGE[name]
    data = build()
    decoder = JSONStreamDecoder()
    out: list[object] = []
    for pos in range(0, len(data), _MIB):
        out += decoder.feed(data[pos : pos + _MIB])
        # Never more than one token over the limit plus one value's tokens.
        assert decoder.buffered <= 2 * MAX_TOKEN_SIZE + 1
    assert [reply(item) for item in out] == replies


def test_flood_without_end_stays_bounded() -> None:
    """A client that never closes a value gets limit errors, not our memory."""
    decoder = JSONStreamDecoder()
    out = []
    chunk = b'["' + b"x" * (4 * _MIB) + b'",'
    for _ in range(40):  # 160 MiB of arrays that never end
        out += decoder.feed(chunk)
        assert decoder.buffered <= MAX_TOKEN_SIZE
    # Every 64 MiB the value is dropped; the token it stopped at, here the comma
    # after the string, then stands alone.
    too_big = JSONParseError("JSON token size limit exceeded")
    assert out == [too_big, JSONParseError("JSON parse error, expecting value")] * 2
    # And the decoder is usable right after.
    decoder.reset()
    assert decoder.feed(QJ) == [{"execute": "query-jobs"}]


# Section: values


def test_numbers_follow_qnum() -> None:
    def one(text: bytes) -> object:
        (value,) = decode(b"[" + text + b"]\n")
        assert isinstance(value, list)
        return value[0]

    cases: list[tuple[bytes, object]] = [
        (b"0", 0),
        (b"-0", 0),
        (b"9223372036854775807", 2**63 - 1),
        (b"9223372036854775808", 2**63),
        (b"18446744073709551615", 2**64 - 1),
        (b"-9223372036854775808", -(2**63)),
        (b"18446744073709551616", 1.8446744073709552e19),
        (b"-9223372036854775809", -9.223372036854776e18),
        (b"1" + b"0" * 5000, float("inf")),
        (b"1.0", 1.0),
        (b"1e2", 100.0),
        (b"1e400", float("inf")),
        (b"-1e400", float("-inf")),
        (b"1e-400", 0.0),
    ]
    for fast in (True, False):
        for text, expected in cases:
            got = one(text) if fast else decode(b"[" + text + b"]\n", fast=False)[0][0]  # type: ignore[index]
            assert repr(got) == repr(expected), text
    minus_zero = one(b"-0.0")
    assert isinstance(minus_zero, float)
    assert str(minus_zero) == "-0.0"


def test_strings() -> None:
    assert decode(b'["\\u0000", "\xc0\x80", "a\\u00e9\xc3\xa9\\uD83D\\uDE00"]\n') == [
        ["\x00", "\x00", "a\u00e9\u00e9\U0001f600"]
    ]
    assert decode(b"['single \"double\" \\'quote\\'']\n") == [["single \"double\" 'quote'"]]


def test_object_keeps_key_order() -> None:
    (value,) = decode(b'{"b": 1, "a": 2, "c": {"z": 0, "y": 1}}\n')
    assert isinstance(value, dict)
    assert list(value) == ["b", "a", "c"]
    assert list(value["c"]) == ["z", "y"]


# Section: streaming behaviour


def test_value_completes_without_newline() -> None:
    decoder = JSONStreamDecoder()
    assert decoder.feed(b'{"execute": "query-jobs"}') == [{"execute": "query-jobs"}]
    # a number or keyword needs the byte after it
    assert decoder.feed(b"42") == []
    assert decoder.feed(b" ") == [42]
    assert decoder.feed(b"tru") == []
    assert decoder.feed(b"e") == []
    assert decoder.feed(b"\n") == [True]


def test_errors_come_out_as_soon_as_qemu_sends_them() -> None:
    decoder = JSONStreamDecoder()
    garbage = JSONParseError("JSON parse error, invalid keyword 'garbage'")
    assert decoder.feed(b"garbage ") == [garbage]
    assert decoder.feed(b'{"a": @') == [JSONParseError("JSON parse error, stray '@'")]
    assert decoder.feed(b"}") == [JSONParseError("JSON parse error, expecting value")]


def test_eof_drops_partial_value() -> None:
    # monitor/qmp.c re-creates the parser on CHR_EVENT_CLOSED without flushing it.
    # Recorded from QSD 7.2 with a half-closed socket: "42", "true", '"abc' and
    # '{"execute":"query-jobs"' then EOF get no reply; "[1,2]\n3" then EOF gets one.
    for partial in (b"42", b"true", b'"abc', b'{"execute":"query-jobs"'):
        decoder = JSONStreamDecoder()
        assert decoder.feed(partial) == []
        assert decoder.feed_eof() == []
    decoder = JSONStreamDecoder()
    assert decoder.feed(b"[1,2]\n3") == [[1, 2]]
    assert decoder.feed_eof() == []

    decoder = JSONStreamDecoder()
    assert decoder.feed(b'{"execute": "query-jobs"}\n{"execute":') == [{"execute": "query-jobs"}]
    assert decoder.buffered > 0
    assert decoder.feed_eof() == []
    assert decoder.buffered == 0
    assert decoder.feed(b'"x"}\n') == ["x", JSONParseError("JSON parse error, expecting value")]
    assert decoder.feed(b"42") == []
    assert decoder.feed_eof() == []
    assert decoder.feed(b"") == []


def test_fast_path_takes_typical_traffic(monkeypatch: pytest.MonkeyPatch) -> None:
    decoder = JSONStreamDecoder()
    slow_calls = []
    real = decoder._lex

    def spy(data: bytes, pos: int, end: int, stop_when_clean: bool) -> int:
        slow_calls.append((pos, end))
        return real(data, pos, end, stop_when_clean)

    monkeypatch.setattr(decoder, "_lex", spy)
    line = b'{"execute": "query-jobs", "id": 17}\n'
    for _ in range(50):
        assert decoder.feed(line) == [{"execute": "query-jobs", "id": 17}]
    assert decoder.feed(line * 50) == [{"execute": "query-jobs", "id": 17}] * 50
    two = b'{"execute": "x", "arguments": {"a": [1, 2.5, null]}}{"execute": "y"}'
    assert decoder.feed(two) == [
        {"execute": "x", "arguments": {"a": [1, 2.5, None]}},
        {"execute": "y"},
    ]
    assert slow_calls == []
    # Chunks that cut lines: only the cut line goes the slow way.
    stream = line * 1000
    values = []
    chunks = 0
    for pos in range(0, len(stream), 4096):
        values += decoder.feed(stream[pos : pos + 4096])
        chunks += 1
    assert len(values) == 1000
    assert len(slow_calls) <= 2 * chunks


# Section: properties


def _dumps_variants(value: object, spaced: bool, ascii_only: bool) -> bytes:
    separators = (", ", ": ") if spaced else (",", ":")
    text = json.dumps(value, separators=separators, ensure_ascii=ascii_only)
    return text.encode("utf-8", "surrogatepass")


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=6)
)
_any_json = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=10,
)
# JSON as Python writes it, including what QEMU refuses (NaN, surrogates, ...).
_python_json = st.builds(_dumps_variants, _any_json, st.booleans(), st.booleans())

_QEMUISMS = [
    b'{"execute": "query-jobs", "id": 17}',
    b"{'execute': 'query-jobs'}",
    b"'it\\'s'",
    b'"\\u0000"',
    b'"\\uD83D\\uDE00"',
    b'"\\uD800"',
    b'"\\uDC00\\uD800"',
    b'"\\uFFFE"',
    b'"\\uFDD0"',
    b'"\\u00e9"',
    b'"\\q"',
    b'"\xc0\x80"',
    b'"\xef\xbf\xbe"',
    b'"\xed\xa0\x80"',
    b'"\xc3\xa9"',
    b'"\xf8\x88\x80\x80\x80"',
    b"18446744073709551615",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"1e400",
    b"0e5",
    b"-0E1",
    b"-0",
    b"-0.0",
    b"0.5e-3",
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b'{"a": 1, "a": 2}',
    b'{"a": [1, {"a": 1, "a": 2}]}',
    b"[" * 5,
    b"]" * 5,
    b"{" * 5,
    b"}" * 5,
    b'{"a":' * 4,
    b"\xff",
    b"\xfe",
    b"\x00",
    b"\x0b",
    b"\xef\xbb\xbf",
    b'"abc',
    b"garbage",
    b"true",
    b"null",
    b"false",
    b"@",
    b"%d",
    b"\\",
    b'{"a": "\xc3\xa9", "b": ["\xe2\x82\xac"]}',
    b'{"a": "\xef\xbf\xbe"}',
    b'{"\xc0\x80": 1}',
    b'{"a": 0e5}',
    b'{"a": [-0E+1]}',
    b'["\\uD800", "\\\\uD800"]',
    b'{"a": "\\uFDD0"}',
    b'{"id": 1e400, "x": -0.0, "y": 1.5e-7}',
    b'"' + b"x" * 300 + b'"',
    b"[" + b"1," * 60 + b"1]",
]
_ALPHABET = list(
    b" \t\r\n{}[]:,\"'\\0123456789-+.eEaflnrstuxNI%@"
    b"\x00\x01\x0b\x7f\x80\xbf\xc0\xc3\xa9\xed\xa0\xef\xbe\xf0\x9f\xfe\xff"
)

_fragment = st.one_of(
    _python_json,
    st.sampled_from(_QEMUISMS),
    st.sampled_from([data for data, _ in RECORDED]),
    st.lists(st.sampled_from(_ALPHABET), max_size=10).map(bytes),
    st.sampled_from([b"\n", b" ", b"\r\n", b"", b"\n\n"]),
)
_stream = st.lists(_fragment, max_size=14).map(b"".join)
_cuts = st.lists(st.integers(min_value=0, max_value=48), max_size=24)


def _same(data: bytes, cuts: list[int]) -> None:
    reference = repr(decode(data, fast=False))
    assert repr(decode(data, fast=True)) == reference
    assert repr(decode(data, fast=True, cuts=cuts)) == reference
    assert repr(decode(data, fast=False, cuts=cuts)) == reference


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_stream, _cuts)
def test_fast_path_and_chunking_never_change_the_output(data: bytes, cuts: list[int]) -> None:
    _same(data, cuts)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_stream, _cuts)
def test_same_at_the_limits(data: bytes, cuts: list[int]) -> None:
    with small_limits():
        _same(data, cuts)


def _qnum(value: object) -> object:
    """What QEMU makes of a value Python wrote as JSON."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else float(value)
    if isinstance(value, list):
        return [_qnum(item) for item in value]
    if isinstance(value, dict):
        return {key: _qnum(item) for key, item in value.items()}
    return value


def _qemu_text(char: str) -> bool:
    code = ord(char)
    return not (0xD800 <= code <= 0xDFFF or 0xFDD0 <= code <= 0xFDEF or code & 0xFFFE == 0xFFFE)


_clean_text = st.text(st.characters().filter(_qemu_text), max_size=6)
_clean_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _clean_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(_clean_text, children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.dictionaries(_clean_text, _clean_json, max_size=4), max_size=6),
    st.booleans(),
    st.booleans(),
    st.sampled_from([b"\n", b"", b" ", b"\r\n"]),
    _cuts,
)
def test_well_formed_json_round_trips(
    values: list[dict[str, object]], spaced: bool, ascii_only: bool, gap: bytes, cuts: list[int]
) -> None:
    data = b"".join(_dumps_variants(value, spaced, ascii_only) + gap for value in values)
    expected = repr([_qnum(value) for value in values])
    for fast in (True, False):
        assert repr(decode(data, fast=fast, cuts=cuts)) == expected


# Section: limits at their edges


def test_nesting_limit_edges() -> None:
    assert decode(b"[" * MAX_NESTING + b"]" * MAX_NESTING) == [
        json.loads("[" * MAX_NESTING + "]" * MAX_NESTING)
    ]
    too_deep = decode(b"{" * (MAX_NESTING + 1))
    assert too_deep == [JSONParseError("JSON nesting depth limit exceeded")]
    # the counter is [ and { together
    mixed = b"[{" * (MAX_NESTING // 2) + b"[]" + b"}]" * (MAX_NESTING // 2)
    assert decode(mixed)[0] == JSONParseError("JSON nesting depth limit exceeded")


def test_token_count_limit_counts_every_token() -> None:
    assert MAX_TOKEN_COUNT == 2 * _MIB
    with small_limits(count=10):
        # 10 tokens: fine; the 11th is refused and drops the value
        assert decode(b"[1,2,3,[]]\n") == [[1, 2, 3, []]]
        assert decode(b"[1,2,3,4,5]\n") == [JSONParseError("JSON token count limit exceeded")]
        # here the 11th token is the comma after 5; what follows stands alone
        assert decode(b"[1,2,3,4,5,6]\n") == [
            JSONParseError("JSON token count limit exceeded"),
            6,
            JSONParseError("JSON parse error, expecting value"),
        ]


def test_token_size_limit_edges() -> None:
    assert MAX_TOKEN_SIZE == 64 * _MIB
    with small_limits(size=20):
        # Each token costs its length; the check is "pending + this + 1 > limit",
        # so one value may have limit - 1 bytes of tokens (whitespace is free).
        too_big = [JSONParseError("JSON token size limit exceeded")]
        assert decode(b'"' + b"a" * 17 + b'"\n') == ["a" * 17]  # 19 bytes
        assert decode(b'"' + b"a" * 18 + b'"\n') == too_big
        assert decode(b'[ "abcdefghijklmno" ]\n') == [["abcdefghijklmno"]]  # 1 + 17 + 1
        assert decode(b'["abcdefghijklmnop"]\n') == too_big


# Section: against a live qemu-storage-daemon (skipped when it is not installed)

#: Ends every case: 0xFF resynchronises QEMU's lexer whatever state the case left
#: it in (at the price of an error reply or two, which the decoder predicts too),
#: then a command whose reply marks the end of the case.
_END = b'\xff{"execute":"query-jobs","id":"end-of-case"}\n'
_END_REPLY = R('"end-of-case"')


def _live_replies(wire_path: Path, data: bytes) -> list[str]:
    with Wire(wire_path) as wire:
        wire.negotiate()
        wire.send(data + _END)
        lines = []
        while True:
            line = wire.raw_line(timeout=20)
            assert line is not None, f"QSD went quiet after {lines!r}"
            assert line.endswith(b"\r\n")
            lines.append(line[:-2].decode())
            if lines[-1] == _END_REPLY:
                return lines


def _coarse(lines: list[str]) -> list[str]:
    """Parse errors verbatim, any other reply as VALUE."""
    return [line if line.startswith(E("JSON ")[:-3]) else "VALUE" for line in lines]


def test_live_qsd_agrees(qsd_socket: Path) -> None:
    """Replay the table, and some random streams, against the real daemon."""
    for data, _ in RECORDED:
        expected = [reply(item) for item in decode(data + _END)]
        assert _live_replies(qsd_socket, data) == expected, data
    fragments = _QEMUISMS + [data for data, _ in RECORDED]
    rng = random.Random(7200)
    for _ in range(300):
        data = b"".join(rng.choice(fragments) for _ in range(rng.randrange(1, 8)))
        if rng.random() < 0.3:
            data = bytes(rng.choice(_ALPHABET) for _ in range(rng.randrange(1, 30))) + data
        ours = [
            "VALUE" if not isinstance(item, JSONParseError) else E(_quote(item.message)[1:-1])
            for item in decode(data + _END)
        ]
        assert _coarse(_live_replies(qsd_socket, data)) == _coarse(ours), data
