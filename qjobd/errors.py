"""The exceptions qjobd raises across layers.

::

    QJobdError                 root: anything qjobd itself raises on purpose
     +-- QMPError              a command failed; becomes {"error": {class, desc}}
          +-- CommandNotFound  error class CommandNotFound
          +-- DeviceNotActive  error class DeviceNotActive (block-job-* on unknown jobs)

A handler reports failure by raising a ``QMPError``; the dispatcher turns it into the
error reply. Anything else escaping a handler is a bug: it is logged with its traceback
and the client still gets a ``GenericError``, so one bad command never takes down the
session or the daemon.
"""

from __future__ import annotations


class QJobdError(Exception):
    """Root of every exception qjobd raises deliberately."""


class QMPError(QJobdError):
    """A command failed in a way the client should see.

    ``error_class`` is one of QEMU's QapiErrorClass names; ``desc`` is the human text,
    which for commands shared with qemu-storage-daemon must match it word for word.
    ``hint`` is QEMU's extra advice (``error_append_hint``): never part of a QMP
    reply, but printed after the message when the error stops a command-line option.
    """

    error_class = "GenericError"

    def __init__(self, desc: str, error_class: str | None = None, *,
                 hint: str | None = None) -> None:
        super().__init__(desc)
        self.desc = desc
        self.hint = hint
        if error_class is not None:
            self.error_class = error_class

    def __str__(self) -> str:
        return self.desc

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.error_class}: {self.desc!r})"


class CommandNotFound(QMPError):
    error_class = "CommandNotFound"


class DeviceNotActive(QMPError):
    error_class = "DeviceNotActive"


class DeviceNotFound(QMPError):
    error_class = "DeviceNotFound"
