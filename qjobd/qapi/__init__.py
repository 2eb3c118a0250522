"""QAPI schema front end: read, check and describe a QAPI schema.

qjobd generates its QMP protocol at run time from a bundled schema written
in QEMU's QAPI language.  This package turns schema files into a checked
model (:class:`~qjobd.qapi.schema.Schema`) and derives what the protocol
layer needs from it, such as ``query-qmp-schema`` data
(:func:`~qjobd.qapi.introspect.introspect`).  It is pure, synchronous code
with no I/O beyond reading the schema files.

Pipeline: :mod:`.parser` (text to expressions and doc comments) →
:mod:`.expr` (per-expression checks, desugaring) → :mod:`.schema` (semantic
model and checks, visitor) → :mod:`.introspect`, :mod:`.textdump`.
"""

from .error import QAPIError, QAPIParseError, QAPISemError, QAPISourceError
from .introspect import introspect
from .schema import Schema, Visitor

__all__ = [
    "QAPIError",
    "QAPIParseError",
    "QAPISemError",
    "QAPISourceError",
    "Schema",
    "Visitor",
    "introspect",
]
