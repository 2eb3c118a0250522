"""Python names for schema names.

QAPI names use ``-`` and ``.``, may start with a ``__RFQDN_`` vendor prefix, and
enum values may start with a digit; Python wants identifiers, reserves its keywords
and mangles names that start with two underscores inside classes.  Each function
here maps one kind of schema name and is total: the generator checks afterwards
that no two schema names of one scope ended up with the same Python name.
"""

from __future__ import annotations

import keyword
import re

from qjobd.qapi.expr import c_name

__all__ = ["class_name", "enum_member_name", "event_class_name", "member_name"]

#: Names a generated attribute, parameter or method must not take: the generated
#: code's own (``self``, ``cls``) and the built-in types its annotations name, which
#: an attribute of that name would shadow in its class's body.
_RESERVED = frozenset(("self", "cls", "str", "int", "float", "bool", "object", "list",
                       "dict"))


def _identifier(name: str) -> str:
    text = c_name(name)
    if text.startswith("_"):  # a vendor prefix (__com.example_foo): no name mangling
        text = "vendor_" + text.lstrip("_")
    return text


def member_name(name: str) -> str:
    """A member, argument or command as a Python attribute/parameter/method:
    ``job-id`` -> ``job_id``, ``in`` -> ``in_``."""
    text = _identifier(name)
    if keyword.iskeyword(text) or keyword.issoftkeyword(text) or text in _RESERVED:
        text += "_"
    return text


def class_name(name: str) -> str:
    """A type as a Python class (QAPI type names are already CamelCase)."""
    text = _identifier(name)
    return text[0].upper() + text[1:]


def enum_member_name(value: str) -> str:
    """An enum value as an ``enum.Enum`` member: ``snapshot-load`` -> ``SNAPSHOT_LOAD``,
    ``4k`` -> ``V_4K``."""
    text = _identifier(value).upper()
    if not text[0].isalpha():
        text = "V_" + text
    return text


def event_class_name(name: str) -> str:
    """An event as a Python class: ``JOB_STATUS_CHANGE`` -> ``JobStatusChangeEvent``."""
    words = re.split(r"[-_.]+", name)
    return "".join(word[:1].upper() + word[1:].lower() for word in words if word) + "Event"
