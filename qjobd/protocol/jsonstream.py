"""Streaming decoder for QMP input that accepts exactly what QEMU 7.2 accepts.

The decoder is sans-IO: :meth:`JSONStreamDecoder.feed` takes whatever bytes arrived
and returns every top-level value, or :class:`JSONParseError`, that QEMU's monitor
would have acted on after seeing the same bytes, in order.  Chunk boundaries never
change the result.

Observable rules it reproduces (checked against qemu-storage-daemon 7.2; the test
file has the table of recorded replies):

* Tokens: ``{ } [ ] : ,``, double- *and single-* quoted strings, numbers per RFC 8259
  except that a ``0`` integer part takes no exponent (``0e5`` is ``0`` followed by
  the keyword ``e``), and any run of ``a``-``z`` as a keyword (rejected by the
  parser unless it is ``true``/``false``/``null``).  Whitespace is space, tab, CR, LF
  only.  A top-level number or keyword ends at the first byte that cannot extend it,
  so ``1 2`` or ``1{...}`` are several values.
* A byte that cannot continue the current token gives ``stray '<token so far>'``
  (the bad byte included, cut at a NUL byte).  Everything pending for the current
  value is dropped and the lexer skips input until one of ``{ } [ ] : ,``, an ASCII
  control character other than tab, or a 0xFE/0xFF byte; parsing restarts there.
  So ``{"a": @}`` yields two errors: the stray ``@`` and then the lone ``}``.
* A value is parsed once its brackets balance (or a closer has no opener); parse
  errors are QEMU's messages, first error wins, and nothing of that value survives.
* Strings: escapes ``\\" \\\\ \\/ \\' \\b \\f \\n \\r \\t \\uXXXX`` (surrogate pairs
  combined); raw bytes must be valid UTF-8 where ``C0 80`` also means U+0000;
  surrogates and the 66 Unicode noncharacters are rejected, raw or escaped.
* Integers become ``int`` when they fit int64 or uint64, else ``float`` (what QEMU's
  QNum does); numbers with a fraction or exponent are always ``float`` (``1e400``
  is ``inf``).  QEMU keeps no trace of the original spelling, so neither do we.
* Duplicate keys are an error.  Limits: 64 MiB of token text per value, 2 Mi
  tokens per value, nesting depth 1024, each with QEMU's message; after a limit
  error the decoder resets, so memory stays bounded whatever the client sends.
* End of input (the client hung up) discards a partial value silently.

QEMU stores strings as modified UTF-8, so ``"\\u0000"`` becomes a two-byte C string;
we hand out Python ``str`` with ``"\\x00"`` instead.  Layers that check byte lengths
the way QEMU does must count U+0000 as two bytes.

Speed: well-formed input goes through :mod:`json`'s C scanner with hooks that bail
out on anything QEMU would treat differently (NaN and friends, duplicate keys,
``0e5``, surrogate or noncharacter escapes, large nesting or size); everything else
goes through a faithful lexer/parser written for this module.  Both paths give the
same results; the test suite checks that with random input.
"""

from __future__ import annotations

import json
import json.scanner
import re
from typing import Any, Final, TypeAlias

import attrs

__all__ = [
    "MAX_NESTING",
    "MAX_TOKEN_COUNT",
    "MAX_TOKEN_SIZE",
    "JSONParseError",
    "JSONStreamDecoder",
    "JSONValue",
]

JSONValue: TypeAlias = dict[str, "JSONValue"] | list["JSONValue"] | str | int | float | bool | None

#: Bytes of token text one value (or one token) may use.
MAX_TOKEN_SIZE: Final = 64 << 20
#: Tokens one value may have.
MAX_TOKEN_COUNT: Final = 2 << 20
#: Deepest nesting of ``[`` and ``{`` one value may have.
MAX_NESTING: Final = 1024

#: QEMU formats parser messages into a buffer of this size (terminator included).
_MESSAGE_BUFFER: Final = 1024


@attrs.frozen
class JSONParseError:
    """Input QEMU rejects; ``message`` is the ``desc`` of its GenericError reply."""

    message: str


_PREFIX: Final = "JSON parse error, "
_ERR_SIZE: Final = JSONParseError("JSON token size limit exceeded")
_ERR_COUNT: Final = JSONParseError("JSON token count limit exceeded")
_ERR_NESTING: Final = JSONParseError("JSON nesting depth limit exceeded")
_ERR_EOI: Final = JSONParseError(_PREFIX + "premature EOI")
_ERR_VALUE: Final = JSONParseError(_PREFIX + "expecting value")
_ERR_KEY: Final = JSONParseError(_PREFIX + "key is not a string in object")
_ERR_COLON: Final = JSONParseError(_PREFIX + "missing : in object pair")
_ERR_DICT_SEP: Final = JSONParseError(_PREFIX + "expected separator in dict")
_ERR_LIST_SEP: Final = JSONParseError(_PREFIX + "expected separator in list")
_ERR_DUPLICATE: Final = JSONParseError(_PREFIX + "duplicate key")
_ERR_ESCAPE: Final = JSONParseError(_PREFIX + "invalid escape sequence in string")
_ERR_UTF8: Final = JSONParseError(_PREFIX + "invalid UTF-8 sequence in string")

# Section: text helpers shared by both paths

#: Unicode noncharacters: U+FDD0..U+FDEF and the last two code points of each plane.
_NONCHAR_CLASS: Final = "\ufdd0-\ufdef" + "".join(
    f"{chr(plane << 16 | 0xFFFE)}{chr(plane << 16 | 0xFFFF)}" for plane in range(17)
)
_NONCHAR: Final = re.compile(f"[{_NONCHAR_CLASS}]")


def _valid_codepoint(cp: int) -> bool:
    return (
        0 <= cp <= 0x10FFFF
        and not 0xD800 <= cp <= 0xDFFF
        and not 0xFDD0 <= cp <= 0xFDEF
        and cp & 0xFFFE != 0xFFFE
    )


def _decode_raw(raw: bytes) -> str | None:
    """Decode string bytes the way QEMU validates them; None when it would refuse."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        if b"\xc0\x80" not in raw:
            return None
        # Modified UTF-8 spells U+0000 C0 80; C0 cannot appear in any other valid
        # sequence, so the replacement cannot create or hide an error.
        try:
            text = raw.replace(b"\xc0\x80", b"\x00").decode()
        except UnicodeDecodeError:
            return None
    if not text.isascii() and _NONCHAR.search(text):
        return None
    return text


_MIN_CODEPOINT: Final = (0x80, 0x800, 0x10000, 0x200000, 0x4000000)


def _lossy(raw: bytes) -> str:
    """What QEMU's JSON writer shows for bytes that may not be valid UTF-8.

    Every maximal malformed sequence (by QEMU's rules, which still know 5- and
    6-byte forms) becomes one U+FFFD.
    """
    text = _decode_raw(raw)
    if text is not None:
        return text
    out: list[str] = []
    i = 0
    size = len(raw)
    while i < size:
        byte = raw[i]
        i += 1
        if byte < 0x80:
            out.append(chr(byte))
            continue
        if byte >= 0xFE or not byte & 0x40:
            out.append("\ufffd")
            continue
        length = 0
        mask = 0x80
        while byte & mask:
            length += 1
            mask >>= 1
        cp = byte & (mask - 1)
        ok = True
        for _ in range(length - 1):
            if i < size and raw[i] & 0xC0 == 0x80:
                cp = cp << 6 | raw[i] & 0x3F
                i += 1
            else:
                ok = False
                break
        if (
            ok
            and _valid_codepoint(cp)
            and (cp >= _MIN_CODEPOINT[length - 2] or (cp == 0 and length == 2))
        ):
            out.append(chr(cp))
        else:
            out.append("\ufffd")
    return "".join(out)


def _parser_error(detail: bytes) -> JSONParseError:
    """A parser message, cut like QEMU's fixed-size formatting buffer cuts it."""
    return JSONParseError(_PREFIX + _lossy(detail[: _MESSAGE_BUFFER - 1]))


def _stray(token: bytes | bytearray) -> JSONParseError:
    text = bytes(token).split(b"\x00", 1)[0]
    return JSONParseError(f"{_PREFIX}stray '{_lossy(text)}'")


_INT64_MIN: Final = -(1 << 63)
_UINT64_MAX: Final = (1 << 64) - 1


def _integer(text: str | bytes) -> int | float:
    """QNum from an integer token: int64, else uint64, else double."""
    if len(text) <= 20:
        value = int(text)
        if _INT64_MIN <= value <= _UINT64_MAX:
            return value
    return float(text)


_SIMPLE_ESCAPES: Final = {
    ord('"'): '"',
    ord("'"): "'",
    ord("\\"): "\\",
    ord("/"): "/",
    ord("b"): "\b",
    ord("f"): "\f",
    ord("n"): "\n",
    ord("r"): "\r",
    ord("t"): "\t",
}
_HEX4: Final = re.compile(rb"[0-9A-Fa-f]{4}")


def _hex4(token: bytes, pos: int) -> int:
    if _HEX4.fullmatch(token, pos, pos + 4) is None:
        return -1
    return int(token[pos : pos + 4], 16)


def _string(token: bytes) -> str | JSONParseError:
    """Value of a string token (quotes included), or QEMU's error for it."""
    end = len(token) - 1
    pos = token.find(b"\\", 1, end)
    if pos < 0:
        text = _decode_raw(token[1:end])
        return _ERR_UTF8 if text is None else text
    parts: list[str] = []
    start = 1
    while True:
        if pos > start:
            text = _decode_raw(token[start:pos])
            if text is None:
                return _ERR_UTF8
            parts.append(text)
        if pos == end:
            break
        code = token[pos + 1]
        simple = _SIMPLE_ESCAPES.get(code)
        if simple is not None:
            parts.append(simple)
            start = pos + 2
        elif code == 0x75:  # u
            cp = _hex4(token, pos + 2)
            after = pos + 6
            if 0xD800 <= cp <= 0xDBFF and token[after : after + 2] == b"\\u":
                low = _hex4(token, after + 2)
                if 0xDC00 <= low <= 0xDFFF:
                    cp = 0x10000 + ((cp & 0x3FF) << 10 | low & 0x3FF)
                    after += 6
                else:
                    cp = -1
            if not _valid_codepoint(cp):
                return _parser_error(token[pos:after] + b" is not a valid Unicode character")
            parts.append(chr(cp))
            start = after
        else:
            return _ERR_ESCAPE
        pos = token.find(b"\\", start, end)
        if pos < 0:
            pos = end
    return "".join(parts)


# Section: the faithful path (lexer, streamer, parser)

# Token types.
_LCURLY: Final = 0
_RCURLY: Final = 1
_LSQUARE: Final = 2
_RSQUARE: Final = 3
_COLON: Final = 4
_COMMA: Final = 5
_INTEGER: Final = 6
_FLOAT: Final = 7
_KEYWORD: Final = 8
_STRING: Final = 9

_STRUCTURAL: Final = {
    ord("{"): _LCURLY,
    ord("}"): _RCURLY,
    ord("["): _LSQUARE,
    ord("]"): _RSQUARE,
    ord(":"): _COLON,
    ord(","): _COMMA,
}

# Lexer states.
_START: Final = 0
_RECOVERY: Final = 1
_DQ: Final = 2
_DQ_ESCAPE: Final = 3
_SQ: Final = 4
_SQ_ESCAPE: Final = 5
_ZERO: Final = 6
_SIGN: Final = 7
_DIGITS: Final = 8
_MANTISSA: Final = 9
_MANTISSA_DIGITS: Final = 10
_EXP_E: Final = 11
_EXP_SIGN: Final = 12
_EXP_DIGITS: Final = 13
_WORD: Final = 14

_WS_BYTES: Final = frozenset(b" \t\r\n")

# One complete token (with the byte that ends it, where one is needed, present but
# not consumed), after optional whitespace.  Anything else, including a token cut
# by the end of the buffer, goes through the byte-at-a-time state machine.
_TOKEN: Final = re.compile(
    rb"[ \t\r\n]*+(?:"
    rb"([{}\[\]:,])"
    rb'|("[^"\\\x00-\x1f\xfe\xff]*+(?:\\[\x20-\xfd][^"\\\x00-\x1f\xfe\xff]*+)*+")'
    rb"|([a-z]++)(?=[^a-z])"
    rb"|(-?+(?:0|[1-9][0-9]*+))(?=[^0-9.eE])"
    rb"|(-?+(?:0|[1-9][0-9]*+)\.[0-9]++(?:[eE][-+]?+[0-9]++)?+"
    rb"|-?+[1-9][0-9]*+[eE][-+]?+[0-9]++)(?=[^0-9eE])"
    rb"|('[^'\\\x00-\x1f\xfe\xff]*+(?:\\[\x20-\xfd][^'\\\x00-\x1f\xfe\xff]*+)*+')"
    rb")"
)
_GROUP_TYPE: Final = (-1, -1, _STRING, _KEYWORD, _INTEGER, _FLOAT, _STRING)
_WS_RUN: Final = re.compile(rb"[ \t\r\n]*")
_DQ_RUN: Final = re.compile(rb'[^"\\\x00-\x1f\xfe\xff]*')
_SQ_RUN: Final = re.compile(rb"[^'\\\x00-\x1f\xfe\xff]*")
_DIGIT_RUN: Final = re.compile(rb"[0-9]*")
_WORD_RUN: Final = re.compile(rb"[a-z]*")
_RECOVERY_RUN: Final = re.compile(rb"[^\x00-\x08\x0a-\x1f\xfe\xff{}\[\]:,]*")


def _skip(run: re.Pattern[bytes], data: bytes, pos: int, end: int) -> int:
    """Where a run of ``run`` (a pattern that matches the empty string) stops."""
    match = run.match(data, pos, end)
    return match.end() if match is not None else pos


_KEYWORDS: Final[dict[bytes, JSONValue]] = {b"true": True, b"false": False, b"null": None}

_Token: TypeAlias = tuple[int, bytes]


def _scalar(kind: int, text: bytes) -> JSONValue | JSONParseError:
    if kind == _STRING:
        return _string(text)
    if kind == _INTEGER:
        return _integer(text)
    if kind == _FLOAT:
        return float(text)
    try:
        return _KEYWORDS[text]
    except KeyError:
        return _parser_error(b"invalid keyword '" + text + b"'")


class _Frame:
    __slots__ = ("container", "key")

    def __init__(self, container: dict[str, JSONValue] | list[JSONValue]) -> None:
        self.container = container
        #: In an object: the key whose value comes next, or None when a key comes next.
        self.key: str | None = None


def _parse(tokens: list[_Token]) -> JSONValue | JSONParseError:
    """Parse one value from a token list the way QEMU's recursive parser does.

    Iterative, so nesting depth is bounded only by the streamer's limit.  The
    first error stops everything, which is all QEMU reports.
    """
    count = len(tokens)
    pos = 0
    stack: list[_Frame] = []
    value: JSONValue
    while True:
        # Here a value (or an object key, which QEMU also parses as any value) starts.
        if pos >= count:
            return _ERR_EOI
        kind, text = tokens[pos]
        pos += 1
        if kind in (_LCURLY, _LSQUARE):
            if pos >= count:
                return _ERR_EOI
            closer = _RCURLY if kind == _LCURLY else _RSQUARE
            container: dict[str, JSONValue] | list[JSONValue] = {} if kind == _LCURLY else []
            if tokens[pos][0] != closer:
                stack.append(_Frame(container))
                continue
            pos += 1
            value = container
        elif kind == _INTEGER and len(text) < 19:
            value = int(text)  # fits int64 whatever the digits
        elif kind >= _INTEGER:
            scalar = _scalar(kind, text)
            if isinstance(scalar, JSONParseError):
                return scalar
            value = scalar
        else:
            return _ERR_VALUE
        # Hand the finished value to its container, closing containers as we go.
        while True:
            if not stack:
                return value
            frame = stack[-1]
            target = frame.container
            if type(target) is dict:
                if frame.key is None:
                    if type(value) is not str:
                        return _ERR_KEY
                    if pos >= count:
                        return _ERR_EOI
                    if tokens[pos][0] != _COLON:
                        return _ERR_COLON
                    pos += 1
                    frame.key = value
                    break
                if frame.key in target:
                    return _ERR_DUPLICATE
                target[frame.key] = value
                frame.key = None
                if pos >= count:
                    return _ERR_EOI
                kind = tokens[pos][0]
                pos += 1
                if kind == _RCURLY:
                    stack.pop()
                    value = target
                    continue
                if kind != _COMMA:
                    return _ERR_DICT_SEP
                break
            assert type(target) is list
            target.append(value)
            if pos >= count:
                return _ERR_EOI
            kind = tokens[pos][0]
            pos += 1
            if kind == _RSQUARE:
                stack.pop()
                value = target
                continue
            if kind != _COMMA:
                return _ERR_LIST_SEP
            break


# Section: the fast path


class _Bail(Exception):
    """Raised by the stdlib decoder hooks for input the fast path must not judge."""


def _fast_pairs(pairs: list[tuple[str, JSONValue]]) -> dict[str, JSONValue]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _Bail
    return result


def _fast_float(text: str) -> float:
    # QEMU's lexer takes no exponent after a bare 0 integer part ("0e5" is 0 then
    # the keyword "e"); the stdlib does.
    digits = text[1:] if text[0] == "-" else text
    if digits[0] == "0" and digits[1:2] in ("e", "E"):
        raise _Bail
    return float(text)


def _fast_constant(text: str) -> float:
    raise _Bail


_FAST_DECODER: Final[Any] = json.JSONDecoder(
    object_pairs_hook=_fast_pairs,
    parse_float=_fast_float,
    parse_int=_integer,
    parse_constant=_fast_constant,
    strict=True,
)
#: The C scanner behind json.loads: (text, index) -> (value, end index).
_FAST_SCAN: Final = json.scanner.make_scanner(_FAST_DECODER)
#: \\u escapes the stdlib accepts but QEMU refuses (surrogates, noncharacters);
#: also matches some harmless text such as an escaped backslash before "uD800".
_SUSPECT_ESCAPE: Final = re.compile(r"\\u(?:[dD][89a-fA-F]|[fF][dD][dDeE]|[fF]{3}[eEfF])")
_WS_TEXT: Final = re.compile(r"[ \t\r\n]*")
#: Values shorter than this cannot nest deeper than QEMU allows.
_FAST_SHALLOW: Final = MAX_NESTING
#: Values at most this long cannot reach the token count or size limits.
_FAST_MAX_SIZE: Final = min(MAX_TOKEN_COUNT, MAX_TOKEN_SIZE - 1)


def _fast_value(text: str, pos: int, end: int) -> tuple[JSONValue, int] | None:
    """Decode the object/array/string at ``text[pos]`` if QEMU would agree.

    Returns the value and where it ends, or None to let the faithful path decide
    (an error, something QEMU reads differently, or a value cut by ``end``).
    """
    try:
        value, stop = _FAST_SCAN(text, pos)
    except (ValueError, StopIteration, RecursionError, _Bail):
        return None
    if stop > end:
        return None
    size = stop - pos
    if size > _FAST_SHALLOW:
        if size > _FAST_MAX_SIZE:
            return None
        if text.count("[", pos, stop) + text.count("{", pos, stop) > MAX_NESTING:
            return None
    if text.find("\\u", pos, stop) >= 0 and _SUSPECT_ESCAPE.search(text, pos, stop):
        return None
    return value, stop


# Section: the decoder


class JSONStreamDecoder:
    """Incremental QMP input decoder; see the module docstring for the rules.

    :param fast_path: use the stdlib scanner for well-formed input (the default).
        Turning it off gives identical results, only slower; tests use that.
    """

    def __init__(self, *, fast_path: bool = True) -> None:
        self._fast_path = fast_path
        self._out: list[JSONValue | JSONParseError] = []
        # Lexer.
        self._state = _START
        self._token = bytearray()
        # Streamer: tokens of the value being collected.
        self._tokens: list[_Token] = []
        self._token_size = 0
        self._braces = 0
        self._brackets = 0

    def feed(self, data: bytes) -> list[JSONValue | JSONParseError]:
        """Take more input; returns everything it completed, in order."""
        out: list[JSONValue | JSONParseError] = []
        self._out = out
        size = len(data)
        if not size:
            return out
        pos = 0
        if not self._fast_path:
            self._lex(data, 0, size, False)
            return out
        if not self._is_clean():
            pos = self._lex(data, 0, size, True)
        if pos < size:
            if data.isascii():
                self._feed_ascii(data, pos)
            else:
                self._feed_lines(data, pos)
        return out

    def feed_eof(self) -> list[JSONValue | JSONParseError]:
        """The client closed the connection: QEMU drops any partial value silently."""
        self.reset()
        return []

    @property
    def buffered(self) -> int:
        """Bytes of input held for an unfinished value (QEMU's limits bound it)."""
        return len(self._token) + self._token_size

    def reset(self) -> None:
        """Forget everything, as a fresh decoder."""
        self._state = _START
        self._token = bytearray()
        self._drop_tokens()

    # Fast path drivers

    def _is_clean(self) -> bool:
        return self._state == _START and not self._tokens

    def _feed_ascii(self, data: bytes, pos: int) -> None:
        text = data.decode("ascii")
        size = len(text)
        out = self._out
        while pos < size:
            # Here the lexer is clean: nothing pending, nothing half read.
            char = text[pos]
            if char in " \t\r\n":
                match = _WS_TEXT.match(text, pos)
                pos = match.end() if match is not None else pos
                if pos >= size:
                    return
                char = text[pos]
            if char == "{" or char == "[" or char == '"':
                found = _fast_value(text, pos, size)
                if found is not None:
                    out.append(found[0])
                    pos = found[1]
                    continue
            pos = self._lex(data, pos, size, True)

    def _feed_lines(self, data: bytes, pos: int) -> None:
        """Fast path for input with non-ASCII bytes: one value per line only."""
        size = len(data)
        out = self._out
        while pos < size:
            newline = data.find(b"\n", pos)
            if newline >= 0 and data[pos] in b'{["':
                try:
                    text = data[pos:newline].decode()
                except UnicodeDecodeError:
                    text = None
                if text is not None and not text.isascii() and _NONCHAR.search(text):
                    text = None
                if text is not None:
                    found = _fast_value(text, 0, len(text))
                    if found is not None:
                        rest = _WS_TEXT.match(text, found[1])
                        if rest is not None and rest.end() == len(text):
                            out.append(found[0])
                            pos = newline + 1
                            continue
            pos = self._lex(data, pos, size, True)

    # Lexer

    def _lex(self, data: bytes, pos: int, end: int, stop_when_clean: bool) -> int:
        """Run the faithful lexer over ``data[pos:end]``.

        With ``stop_when_clean``, return early (the position of the next unread
        byte) once the lexer is back in a clean state just before a ``{`` or
        ``[``, so the caller can try the fast path again.
        """
        begin = pos
        state = self._state
        token = self._token
        emit = self._emit
        limit = MAX_TOKEN_SIZE
        while pos < end:
            if state == _START:
                if stop_when_clean and pos > begin and not self._tokens:
                    # Clean again: hand back to the fast path before an object.
                    if data[pos] in _WS_BYTES:
                        pos = _skip(_WS_RUN, data, pos, end)
                        if pos >= end:
                            break
                    byte = data[pos]
                    if byte == 0x7B or byte == 0x5B:
                        break
                match = _TOKEN.match(data, pos, end if end - pos <= limit else pos + limit)
                if match is not None:
                    group = match.lastindex
                    assert group is not None
                    pos = match.end()
                    if group == 1:
                        emit(_STRUCTURAL[data[pos - 1]], b"")
                    else:
                        emit(_GROUP_TYPE[group], match.group(group))
                    continue
                pos = _skip(_WS_RUN, data, pos, end)
                if pos >= end:
                    break
                byte = data[pos]
                pos += 1
                token.append(byte)
                if byte == 0x22:
                    state = _DQ
                elif byte == 0x27:
                    state = _SQ
                elif 0x61 <= byte <= 0x7A:
                    state = _WORD
                elif 0x31 <= byte <= 0x39:
                    state = _DIGITS
                elif byte == 0x30:
                    state = _ZERO
                elif byte == 0x2D:
                    state = _SIGN
                elif byte in _STRUCTURAL:  # only when the regex was cut short
                    del token[:]
                    emit(_STRUCTURAL[byte], b"")
                else:
                    state = self._error(token)
                continue

            if state == _RECOVERY:
                pos = _skip(_RECOVERY_RUN, data, pos, end)
                if pos < end:
                    state = _START
                continue

            # Inside a token: swallow the bytes that keep the state, then look at
            # the one that changes it.
            room = min(end, pos + limit + 1 - len(token))
            if state in (_DQ, _SQ):
                run = _DQ_RUN if state == _DQ else _SQ_RUN
                stop = _skip(run, data, pos, room)
            elif state in (_DIGITS, _MANTISSA_DIGITS, _EXP_DIGITS):
                stop = _skip(_DIGIT_RUN, data, pos, room)
            elif state == _WORD:
                stop = _skip(_WORD_RUN, data, pos, room)
            else:
                stop = pos
            if stop > pos:
                token += data[pos:stop]
                pos = stop
                if len(token) > limit:
                    state = self._oversize(token)
                    continue
            if pos >= end:
                break
            byte = data[pos]
            if state in (_DQ, _SQ):
                pos += 1
                token.append(byte)
                if byte == (0x22 if state == _DQ else 0x27):
                    emit(_STRING, bytes(token))
                    del token[:]
                    state = _START
                    continue
                if byte == 0x5C:
                    state = _DQ_ESCAPE if state == _DQ else _SQ_ESCAPE
                else:
                    state = self._error(token)
                    continue
            elif state in (_DQ_ESCAPE, _SQ_ESCAPE):
                pos += 1
                token.append(byte)
                if 0x20 <= byte <= 0xFD:
                    state = _DQ if state == _DQ_ESCAPE else _SQ
                else:
                    state = self._error(token)
                    continue
            elif state == _WORD:
                emit(_KEYWORD, bytes(token))
                del token[:]
                state = _START
                continue
            else:
                # Numbers.
                is_digit = 0x30 <= byte <= 0x39
                follow = -1
                if state == _ZERO:
                    if is_digit:
                        follow = _RECOVERY
                    elif byte == 0x2E:
                        follow = _MANTISSA
                elif state == _SIGN:
                    if byte == 0x30:
                        follow = _ZERO
                    elif is_digit:
                        follow = _DIGITS
                    else:
                        follow = _RECOVERY
                elif state == _DIGITS:
                    if byte == 0x2E:
                        follow = _MANTISSA
                    elif byte == 0x65 or byte == 0x45:
                        follow = _EXP_E
                elif state == _MANTISSA:
                    follow = _MANTISSA_DIGITS if is_digit else _RECOVERY
                elif state == _MANTISSA_DIGITS:
                    if byte == 0x65 or byte == 0x45:
                        follow = _EXP_E
                elif state == _EXP_E:
                    if byte == 0x2B or byte == 0x2D:
                        follow = _EXP_SIGN
                    else:
                        follow = _EXP_DIGITS if is_digit else _RECOVERY
                elif state == _EXP_SIGN:
                    follow = _EXP_DIGITS if is_digit else _RECOVERY
                # _EXP_DIGITS: any byte left here ends the number.
                if follow < 0:
                    kind = _INTEGER if state in (_ZERO, _DIGITS) else _FLOAT
                    emit(kind, bytes(token))
                    del token[:]
                    state = _START
                    continue
                pos += 1
                token.append(byte)
                if follow == _RECOVERY:
                    state = self._error(token)
                    continue
                state = follow
            if len(token) > limit:
                state = self._oversize(token)
        self._state = state
        return pos

    def _error(self, token: bytearray) -> int:
        """A byte no token can take: report the token so far, drop the value."""
        self._drop_tokens()
        self._out.append(_stray(token))
        del token[:]
        return _RECOVERY

    def _oversize(self, token: bytearray) -> int:
        """The current token outgrew the limit: QEMU reports it and starts afresh.

        (QEMU passes the token to the streamer, whose size check always refuses it.)
        """
        self._fail(_ERR_SIZE)
        del token[:]
        return _START

    # Streamer

    def _drop_tokens(self) -> None:
        self._tokens = []
        self._token_size = 0
        self._braces = 0
        self._brackets = 0

    def _emit(self, kind: int, text: bytes) -> None:
        """Collect one token; parse the value when its brackets balance.

        QEMU checks size, count and nesting, in that order, for every token; we
        skip the checks that cannot fail (nesting only grows at an opener, and a
        value can only end at a closer or when nothing is pending).
        """
        tokens = self._tokens
        out = self._out
        if not tokens:
            if kind >= _INTEGER:
                # A scalar on its own: size is the only limit it can reach.
                if len(text) >= MAX_TOKEN_SIZE:
                    out.append(_ERR_SIZE)
                else:
                    out.append(_scalar(kind, text))
            elif kind in (_LCURLY, _LSQUARE):
                tokens.append((kind, text))
                self._token_size = 1
                if kind == _LCURLY:
                    self._braces = 1
                else:
                    self._brackets = 1
            else:
                out.append(_ERR_VALUE)  # a lone } ] : or ,
            return
        # Structural tokens are one byte long; the lexer passes them as b"".
        size = self._token_size + (len(text) if kind >= _INTEGER else 1)
        if size >= MAX_TOKEN_SIZE:  # pending + this + 1 > limit
            self._fail(_ERR_SIZE)
            return
        if len(tokens) >= MAX_TOKEN_COUNT:
            self._fail(_ERR_COUNT)
            return
        if kind <= _RSQUARE:
            if kind == _LCURLY:
                self._braces += 1
            elif kind == _LSQUARE:
                self._brackets += 1
            else:
                if kind == _RCURLY:
                    self._braces -= 1
                else:
                    self._brackets -= 1
                braces = self._braces
                brackets = self._brackets
                if not ((braces > 0 or brackets > 0) and braces >= 0 and brackets >= 0):
                    tokens.append((kind, text))
                    self._drop_tokens()
                    out.append(_parse(tokens))
                    return
            if self._braces + self._brackets > MAX_NESTING:
                self._fail(_ERR_NESTING)
                return
        tokens.append((kind, text))
        self._token_size = size

    def _fail(self, error: JSONParseError) -> None:
        self._drop_tokens()
        self._out.append(error)
