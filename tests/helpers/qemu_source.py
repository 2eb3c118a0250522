"""Where the tests find QEMU 7.2's source tree (its QAPI schemas and test cases).

``$QEMU_SRC``, by default where ``contrib/fetch-qemu-source.sh`` unpacks Debian's
source package (``contrib/run-tests.sh`` runs it); tests that need it skip
without it.  Nothing from it is ever copied into the project.
"""

from __future__ import annotations

import os
from pathlib import Path

QEMU_SRC = Path(os.environ.get("QEMU_SRC", "/tmp/qemu-src/qemu-7.2.0"))
QSD_SCHEMA = QEMU_SRC / "storage-daemon" / "qapi" / "qapi-schema.json"
FULL_SCHEMA = QEMU_SRC / "qapi" / "qapi-schema.json"
QAPI_CASES = QEMU_SRC / "tests" / "qapi-schema"
