"""``qjobd-gen-client SCHEMA... -o OUTDIR``: write a client package for the schemas.

Errors in a schema go to standard error as ``file:line: message`` (as with
``python -m qjobd.qapi``), exit status 1; usage errors exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from qjobd.qapi.error import QAPIError

from .generator import GeneratorError, generate, write_package

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qjobd-gen-client",
        description="Write a typed async Python QMP client package (on qemu.qmp) for "
        "QAPI schema files; several files make one client.",
    )
    parser.add_argument("schemas", nargs="+", metavar="SCHEMA", help="main QAPI schema file")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="OUTDIR",
                        help="package directory to write (created; old modules replaced)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    try:
        files = generate(options.schemas)
    except QAPIError as error:
        print(error, file=sys.stderr)  # file:line: message, as python -m qjobd.qapi
        return 1
    except GeneratorError as error:
        print(f"qjobd-gen-client: {error}", file=sys.stderr)
        return 1
    write_package(files, options.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
