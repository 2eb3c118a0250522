"""Runtime types and converters generated from the QAPI schema (pure, synchronous).

:class:`Model` is the entry point: built once from a checked
:class:`qjobd.qapi.Schema`, it holds an attrs class per object type, a ``StrEnum`` per
enum, one ``cattrs.Converter`` with hooks for all of them, and per command / event the
functions dispatch needs.  Structuring reproduces QEMU 7.2's QObject input visitor
exactly, error messages included (:class:`ArgumentError`); see :mod:`.convert` for the
rules and :mod:`.build` for the Python mapping (including :data:`ABSENT`).
"""

from .build import ABSENT, Absent, QAPIEnum, QAPIStruct
from .errors import ArgumentError, ModelError
from .registry import CommandInfo, EventInfo, Model

__all__ = [
    "ABSENT",
    "Absent",
    "ArgumentError",
    "CommandInfo",
    "EventInfo",
    "Model",
    "ModelError",
    "QAPIEnum",
    "QAPIStruct",
]
