"""The command line, scanned as qemu-storage-daemon scans it.

QSD reads its arguments with glibc's ``getopt_long`` in "return in order" mode, and
scripts written for it rely on the details: ``--opt value`` and ``--opt=value``,
unambiguous abbreviations (``--blo``), clustered short options (``-hV``), ``--``
ending the options, and glibc's wording for mistakes (``unrecognized option
'--x'``, ``option '--blockdev' requires an argument``, ...), each one line on stderr
and exit status 1.  This module reproduces that scanner over a table of options
(:data:`OPTIONS`, qjobd's own options and QSD's), so adding an option is one
:class:`Option` row; what each option *does* is the program's business
(:mod:`qjobd.cli`).

A word that is not an option is an :data:`UNEXPECTED` item, which QSD refuses with
``<word>: Unexpected argument``.  Each item keeps the words it came from
(``--blockdev=x`` or ``--blo x``), because QSD names them in its error messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import attrs

from qjobd.errors import QJobdError

__all__ = ["OPTIONS", "UNEXPECTED", "GetoptError", "Item", "Option", "scan"]


@attrs.frozen
class Option:
    """One option of the table.

    :param name: the long name, without ``--``.
    :param metavar: the argument's name in help, or None for an option without one.
    :param help: one line of help.
    :param short: the one-letter form, if any.
    :param ordered: processed in command-line order after startup's first pass (the
        options that build something: ``--blockdev``, ``--chardev``, ...); the others
        are settings read before anything starts.
    """

    name: str
    metavar: str | None
    help: str
    short: str | None = None
    ordered: bool = False


#: Every option qjobd knows, qjobd's own first.  QSD's options that qjobd cannot
#: honour are listed too, so they get a clear refusal rather than "unrecognized".
OPTIONS: Final[tuple[Option, ...]] = (
    Option("socket", "PATH", "QMP socket path (qjobd's short form of --chardev/--monitor)"),
    Option("log-level", "LEVEL", "debug, info, warning, error or critical (default: info)"),
    Option("blockdev", "OPTIONS", "add a block node (key=value,... or JSON)", ordered=True),
    Option("chardev", "OPTIONS", "socket,id=ID,path=PATH,server=on,wait=off or stdio,id=ID",
           ordered=True),
    Option("monitor", "OPTIONS", "[chardev=]ID[,mode=control]: a QMP monitor on a chardev",
           ordered=True),
    Option("history", "FILE", "job history file (default: history.sqlite3 in SOCKET.state/)"),
    Option("log-file", "FILE", "append the log to FILE, not stderr (what --daemonize keeps)"),
    Option("daemonize", None, "fork to the background once startup is complete"),
    Option("pidfile", "PATH", "write the process id to PATH after startup"),
    Option("export", "OPTIONS", "(qemu-storage-daemon's; not supported)", ordered=True),
    Option("nbd-server", "OPTIONS", "(qemu-storage-daemon's; not supported)", ordered=True),
    Option("object", "OPTIONS", "(qemu-storage-daemon's; not supported)", ordered=True),
    Option("trace", "OPTIONS", "(qemu-storage-daemon's; not supported)", short="T",
           ordered=True),
    Option("help", None, "show this help and exit", short="h"),
    Option("version", None, "show the version and exit", short="V"),
)

#: The pseudo-option of a word that is not an option.
UNEXPECTED: Final = Option("", "WORD", "")


class GetoptError(QJobdError):
    """A malformed command line; the message is glibc's (without the program name)."""


@attrs.frozen
class Item:
    """One option as given: the option, its argument, and the words it came from."""

    option: Option
    value: str | None
    words: tuple[str, ...]

    @property
    def location(self) -> str:
        """How QSD names the option in an error: its words, space-separated."""
        return " ".join(self.words)


def _long(word: str, rest: Sequence[str], table: Sequence[Option]) -> tuple[Item, int]:
    """The item of long option ``word`` (``--name[=value]``) and the words it took."""
    name, equals, value = word[2:].partition("=")
    exact = [option for option in table if option.name == name]
    matches = exact or [option for option in table if option.name.startswith(name)]
    if not matches:
        raise GetoptError(f"unrecognized option '--{name}'")
    if len(matches) > 1:
        names = " ".join(f"'--{option.name}'" for option in matches)
        raise GetoptError(f"option '--{name}' is ambiguous; possibilities: {names}")
    option = matches[0]
    if option.metavar is None:
        if equals:
            raise GetoptError(f"option '--{option.name}' doesn't allow an argument")
        return Item(option, None, (word,)), 1
    if equals:
        return Item(option, value, (word,)), 1
    if not rest:
        raise GetoptError(f"option '--{option.name}' requires an argument")
    return Item(option, rest[0], (word, rest[0])), 2


def _shorts(word: str, rest: Sequence[str], table: Sequence[Option], items: list[Item]) -> int:
    """Add the items of a cluster of short options (``-hV``, ``-Tpattern``) to
    ``items``, one by one (those before a mistake stay); the words it took."""
    for at in range(1, len(word)):
        letter = word[at]
        option = next((o for o in table if o.short == letter), None)
        if option is None:
            raise GetoptError(f"invalid option -- '{letter}'")
        if option.metavar is None:
            items.append(Item(option, None, (word,)))
            continue
        if at + 1 < len(word):
            items.append(Item(option, word[at + 1:], (word,)))
            return 1
        if not rest:
            raise GetoptError(f"option requires an argument -- '{letter}'")
        items.append(Item(option, rest[0], (word, rest[0])))
        return 2
    return 1


def scan(argv: Sequence[str], table: Sequence[Option] = OPTIONS
         ) -> tuple[list[Item], GetoptError | None]:
    """Every item of ``argv`` (without the program name), in order, and the mistake
    that stopped the scan, if any.

    The scan stops at the first mistake (an unknown option, a missing or unwanted
    argument), as getopt does; QSD still acts on ``-h`` and ``-V`` given before it.
    """
    items: list[Item] = []
    index = 0
    while index < len(argv):
        word = argv[index]
        rest = argv[index + 1:]
        try:
            if word == "--":
                break
            if word.startswith("--"):
                item, used = _long(word, rest, table)
                items.append(item)
            elif word.startswith("-") and word != "-":
                used = _shorts(word, rest, table, items)
            else:
                items.append(Item(UNEXPECTED, word, (word,)))
                used = 1
        except GetoptError as error:
            return items, error
        index += used
    return items, None
