"""``qjobd-gen-client``: typed async Python clients from QAPI schemas.

Reads any QAPI schema (qjobd's bundled one, QEMU's or qemu-storage-daemon's) with
qjobd's own front end (:mod:`qjobd.qapi`) and writes a client package on the
``qemu.qmp`` library: see :mod:`.generator` for what the package holds and the rules
it follows.  Pure code (no trio); :mod:`.runtime` and :mod:`.clientbase` are
modules copied verbatim into every generated package.
"""

from .generator import GeneratorError, generate, write_package

__all__ = ["GeneratorError", "generate", "write_package"]
