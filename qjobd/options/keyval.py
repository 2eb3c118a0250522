"""QEMU's ``key=value,key.sub=value`` option syntax (the keyval parser).

qemu-storage-daemon reads ``--blockdev``, ``--monitor`` and friends in this syntax
(or as JSON when the text starts with ``{``), and scripts written for it must work
with qjobd unchanged, so qjobd parses it by the same rules (``util/keyval.c`` in
QEMU 7.2), errors worded alike:

* ``key=value`` pairs separated by ``,``; a ``,,`` inside a value is a literal comma;
  a trailing ``,`` is allowed;
* a key is ``.``-separated fragments, each a QAPI name (``[A-Za-z][A-Za-z0-9_-]*``,
  or ``__RFQDN_`` followed by one) or, except the first, a decimal index; a fragment
  is at most 127 characters;
* fragments build nested objects, and an object whose keys are all indexes becomes a
  list (``a.0=x,a.1=y``) whose indexes must have no gap;
* the first pair may leave out its key (the *implied key*: ``--blockdev file,...``
  means ``driver=file``) when its value has no ``=``;
* the last value given for a key wins; a key that is both a value and an object is
  "used inconsistently";
* ``help`` or ``?`` alone asks for help, which these options refuse.

Every value is a string: typing them through the schema is
:mod:`qjobd.model.keyval_input`'s job.
"""

from __future__ import annotations

import re
from typing import Any, Final

from qjobd.errors import QJobdError

__all__ = ["KeyvalError", "keyval_bool", "parse_keyval"]

_FRAGMENT_MAX: Final = 127
_QAPI_NAME: Final = re.compile(r"(?:__[A-Za-z0-9.-]*_)?[A-Za-z][A-Za-z0-9_-]*")
_INDEX: Final = re.compile(r"[0-9]+")
_INT_MAX: Final = 2**31 - 1


class KeyvalError(QJobdError):
    """The text is not valid keyval syntax; the message is QEMU's."""


def _index(fragment: str) -> int | None:
    """A list index (capped at INT_MAX as QEMU does), or None for a name."""
    if not fragment or not fragment[0].isdigit() or not _INDEX.fullmatch(fragment):
        return None
    return min(int(fragment), _INT_MAX)


def _put(cur: dict[str, Any], fragment: str, value: str | None, key: str,
         upto: int) -> Any:
    """Make ``cur[fragment]`` an object (``value`` None) or the string ``value``."""
    old = cur.get(fragment)
    if old is not None:
        if isinstance(old, dict) != (value is None):
            raise KeyvalError(f"Parameters '{key[:upto]}.*' used inconsistently")
        if value is None:
            return old
    new: Any = {} if value is None else value
    cur[fragment] = new
    return new


def _is_help(text: str) -> bool:
    return text in ("help", "?")


def _parse_one(root: dict[str, Any], text: str, pos: int, implied: str | None) -> tuple[int, bool]:
    """Parse the pair at ``pos``; (position after it, whether it asked for help)."""
    end = pos
    while end < len(text) and text[end] not in "=,":
        end += 1
    head = text[pos:end]
    value_end = None
    if head and (end == len(text) or text[end] != "="):
        if _is_help(head):
            return (end + 1 if end < len(text) else end), True
        if implied is not None:
            value_end = end
            key = implied
        else:
            key = head
    else:
        key = head
    # Walk the fragments of the key.
    cur = root
    start = 0
    while True:
        if start:
            match = _INDEX.match(key, start)
            if match is None:
                match = _QAPI_NAME.match(key, start)
        else:
            match = _QAPI_NAME.match(key, start)
        length = match.end() - start if match else 0
        if not length or (start + length < len(key) and key[start + length] != "."):
            raise KeyvalError(f"Invalid parameter '{key}'")
        if length > _FRAGMENT_MAX:
            whole = start == 0 and start + length == len(key)
            word = "Parameter" if whole else "Parameter fragment"
            raise KeyvalError(f"{word} '{key[start:start + length]}' is too long")
        fragment = key[start:start + length]
        start += length
        if start == len(key):
            break
        cur = _put(cur, fragment, None, key, start)
        start += 1
    if value_end is not None:
        value = text[pos:value_end]
        after = value_end + 1 if value_end < len(text) else value_end
    else:
        at = pos + len(key)
        if at >= len(text) or text[at] != "=":
            raise KeyvalError(f"Expected '=' after parameter '{key}'")
        at += 1
        chars: list[str] = []
        while at < len(text):
            if text[at] == ",":
                if text[at + 1:at + 2] != ",":
                    at += 1
                    break
                at += 1
            chars.append(text[at])
            at += 1
        value = "".join(chars)
        after = at
    _put(cur, fragment, value, key, len(key))
    return after, False


def _listify(cur: dict[str, Any], path: str) -> Any:
    """Turn objects whose keys are all indexes into lists, depth first."""
    has_index = has_member = False
    for key, value in list(cur.items()):
        if _index(key) is not None:
            has_index = True
        else:
            has_member = True
        if isinstance(value, dict):
            cur[key] = _listify(value, f"{path}{key}.")
    if has_index and has_member:
        raise KeyvalError(f"Parameters '{path}*' used inconsistently")
    if not has_index:
        return cur
    by_index: dict[int, Any] = {}
    for key, value in cur.items():
        index = _index(key)
        assert index is not None
        by_index[index] = value
    items = []
    for i in range(min(len(cur) + 1, max(by_index) + 1)):
        if i not in by_index:
            raise KeyvalError(f"Parameter '{path}{i}' missing")
        items.append(by_index[i])
    return items


def parse_keyval(text: str, implied_key: str | None = None) -> dict[str, Any]:
    """The object ``text`` denotes: nested dicts and lists of strings.

    :raise KeyvalError: bad syntax, or help asked for (with QEMU's message).
    """
    root: dict[str, Any] = {}
    pos = 0
    wants_help = False
    implied = implied_key
    while pos < len(text):
        pos, asked = _parse_one(root, text, pos, implied)
        wants_help = wants_help or asked
        implied = None
    if wants_help:
        raise KeyvalError("Help is not available for this option")
    result = _listify(root, "")
    assert isinstance(result, dict)
    return result


def keyval_bool(text: str) -> bool | None:
    """A boolean as QEMU's options spell it (``on``/``yes``/``true``/``y`` and
    ``off``/``no``/``false``/``n``), or None."""
    if text in ("on", "yes", "true", "y"):
        return True
    if text in ("off", "no", "false", "n"):
        return False
    return None
