"""Python names for QAPI names.

QAPI names use dashes (``job-id``), sometimes underscores or dots (downstream
extensions such as ``__com.redhat_foo``) and may be Python keywords (``if``).  The
rules here are deliberately simple so a handler author can predict them:

* members and enum values: every character that is not ``[A-Za-z0-9_]`` becomes
  ``_``; a name that then starts with ``_`` or a digit gets the prefix ``q``; a
  Python keyword (and ``mro`` for enum values) gets a trailing ``_``.  So ``job-id``
  is ``job_id``, ``if`` is ``if_``, ``__com.redhat_x`` is ``q__com_redhat_x``.
* types: explicit types keep their QAPI name (sanitized the same way); implicit
  command argument structs ``q_obj_<command>-arg`` become ``<Command>Args`` in
  CamelCase (``job-pause`` -> ``JobPauseArgs``), event data ``<Event>Data``
  (``JOB_STATUS_CHANGE`` -> ``JobStatusChangeData``), implicit union bases
  ``<Union>Base``.

The wire name is always kept in the attrs field metadata (key ``"qapi"``).
"""

from __future__ import annotations

import keyword
import re

__all__ = ["camel_case", "class_name", "enum_member_name", "member_name"]

_NON_IDENT = re.compile(r"[^A-Za-z0-9_]")


def _identifier(name: str) -> str:
    text = _NON_IDENT.sub("_", name)
    if not text or text[0] == "_" or text[0].isdigit():
        text = "q" + text
    return text


def member_name(name: str) -> str:
    """The attribute name of the QAPI object member ``name``."""
    text = _identifier(name)
    if keyword.iskeyword(text):
        text += "_"
    return text


def enum_member_name(name: str) -> str:
    """The Python ``Enum`` member name for QAPI enum value ``name``."""
    text = member_name(name)
    if text == "mro":
        text += "_"
    return text


def camel_case(name: str) -> str:
    """``job-pause`` -> ``JobPause``, ``JOB_STATUS_CHANGE`` -> ``JobStatusChange``."""
    parts = [p for p in re.split(r"[-_.]+", name) if p]
    out = []
    for part in parts:
        if part.isupper() or part.islower():
            out.append(part[:1].upper() + part[1:].lower())
        else:
            out.append(part[:1].upper() + part[1:])
    return _identifier("".join(out) or "Q")


def class_name(qapi_name: str, *, event: bool = False) -> str:
    """The ``__name__`` of the class generated for QAPI type ``qapi_name``."""
    if qapi_name.startswith("q_obj_"):
        stem = qapi_name[len("q_obj_") :]
        for suffix, replacement in (("-arg", "Data" if event else "Args"), ("-base", "Base")):
            if stem.endswith(suffix):
                return camel_case(stem[: -len(suffix)]) + replacement
        return camel_case(stem)
    if qapi_name == "q_empty":
        return "Empty"
    return _identifier(qapi_name)
