"""``python -m flowchat_<name> <command>``: the one entry of every service.

Imports nothing heavy (no app, no web server, no drivers), so ``--help`` answers at once
and a mistyped command can never start a second replica.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

#: A service's extra command: its one-line help and the function that runs it on the
#: rest of the command line (returns the exit status).
Command = tuple[str, Callable[[list[str]], int]]


def service_main(
    module: str,
    serve: Callable[[], None],
    argv: Sequence[str] | None = None,
    commands: dict[str, Command] | None = None,
) -> int:
    """``python -m <module> <command>``: the one entry of every service.

    The service starts only through ``serve``; no command, ``--help`` or a mistyped
    command prints the usage and exits (2 for a mistake) without importing the app,
    connecting to anything or migrating a database. ``serve`` is a function so that
    the app is imported only when it is asked for.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    extra = commands or {}
    usage = _usage(module, extra)
    if not args:
        sys.stderr.write(f"a command is needed\n{usage}")
        return 2
    command, rest = args[0], args[1:]
    if command in ("-h", "--help", "help"):
        sys.stdout.write(usage)
        return 0
    if command == "serve":
        if any(a in ("-h", "--help") for a in rest):
            sys.stdout.write(f"usage: python -m {module} serve\n\n  {SERVE_HELP}\n")
            return 0
        if rest:
            sys.stderr.write(f"serve takes no arguments (got {' '.join(rest)!r})\n{usage}")
            return 2
        serve()
        return 0
    if command in extra:
        return extra[command][1](rest)
    sys.stderr.write(f"unknown command {command!r}\n{usage}")
    return 2


SERVE_HELP = "run the service (HTTP API, consumers); settings from the environment"


def _usage(module: str, commands: dict[str, Command]) -> str:
    names = ["serve", *commands]
    lines = [f"usage: python -m {module} {{{','.join(names)}}} ...", ""]
    width = max(len(n) for n in names)
    lines.append(f"  {'serve'.ljust(width)}  {SERVE_HELP}")
    lines += [f"  {name.ljust(width)}  {text}" for name, (text, _) in commands.items()]
    lines += [
        "",
        "Nothing starts without a command; `--help` on a command shows its options.",
        "Operator and tenant tasks: the `flowchat` CLI (`flowchat --help`).",
        "",
    ]
    return "\n".join(lines)
