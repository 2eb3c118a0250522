"""QEMU's one rule for the names clients give things (util/id.c id_wellformed).

Node names and job ids follow the same rule, so both the block graph and the job
manager check names here and the two can never drift apart.
"""

from __future__ import annotations

import string
from typing import Final

__all__ = ["id_wellformed"]

_FIRST: Final = frozenset(string.ascii_letters)
_REST: Final = frozenset(string.ascii_letters + string.digits + "-._")


def id_wellformed(identifier: str) -> bool:
    """A letter, then letters, digits, '-', '.' and '_' (ASCII only)."""
    return bool(identifier) and identifier[0] in _FIRST and all(c in _REST for c in identifier)
