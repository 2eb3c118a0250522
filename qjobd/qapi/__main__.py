"""Check QAPI schema files from the command line.

``python -m qjobd.qapi FILE...`` runs the whole front end (parser, checks,
included files) on each file, the way the daemon does at start-up, so
schema authors find their mistakes before starting it.  Errors go to
standard error as ``file:line: message``; the exit status is 1 if any file
is invalid, 0 otherwise.  ``--dump`` prints a Markdown reference or the
``query-qmp-schema`` JSON for valid files.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .error import QAPIError
from .introspect import introspect
from .schema import Schema
from .textdump import dump_text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m qjobd.qapi",
        description="Check QAPI schema files (following their includes).",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="schema file to check")
    parser.add_argument(
        "--dump",
        choices=("text", "introspect"),
        help="print a Markdown reference ('text') or query-qmp-schema JSON ('introspect')",
    )
    parser.add_argument(
        "-D",
        "--define",
        action="append",
        default=[],
        metavar="SYMBOL",
        help="configuration symbol to treat as defined for 'if' conditions "
        "(introspection only; repeatable)",
    )
    parser.add_argument("--unmask", action="store_true", help="introspection: keep real type names")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing for valid files")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    status = 0
    for fname in args.files:
        try:
            schema = Schema(fname)
        except QAPIError as err:
            print(err, file=sys.stderr)
            status = 1
            continue
        if args.dump == "text":
            sys.stdout.write(dump_text(schema))
        elif args.dump == "introspect":
            data = introspect(schema, frozenset(args.define), unmask=args.unmask)
            json.dump(data, sys.stdout, indent=2)
            sys.stdout.write("\n")
        elif not args.quiet:
            print(
                f"{fname}: OK ({len(schema.commands())} commands, "
                f"{len(schema.events())} events, {len(schema.types())} types)"
            )
    return status


if __name__ == "__main__":
    sys.exit(main())
