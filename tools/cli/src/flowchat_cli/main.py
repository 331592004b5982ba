"""``flowchat``: the entry point (``[project.scripts]``) and the root group."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from flowchat_cli.app import Group, State
from flowchat_cli.errors import EXIT_CODES, EXIT_USAGE, CliError
from flowchat_cli.operator import keys, numbers, tenants, users
from flowchat_cli.ops import dlq, sandbox
from flowchat_cli.output import Output
from flowchat_cli.tenant import campaigns, contacts, endpoints, messages, templates

EPILOG = (
    "\b\nConfiguration: the environment, else .run/stack.env (what `make up` writes):\n"
    "  FLOWCHAT_<SERVICE>_URL   where each service answers (FLOWCHAT_STATE_URL for the\n"
    "                           state-manager); the local stack's ports by default\n"
    "  FLOWCHAT_OPERATOR_KEY    tenants, numbers, keys, users\n"
    "  FLOWCHAT_API_KEY         a tenant's key: messages (and that tenant's data)\n"
    "  FLOWCHAT_SERVICE_TOKEN   the DLQ; any tenant's data with --tenant\n"
    "  FLOWCHAT_TENANT_ID       the default --tenant\n"
    "  FLOWCHAT_ACCOUNT_ID      the default --number\n"
    "\b\nExit status:\n"
    + "".join(f"  {code}  {text}\n" for code, text in EXIT_CODES.items())
    + "\b\nServices run with `python -m flowchat_<name> serve` (never from here)."
)


@click.group(cls=Group, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option("1.0.0", prog_name="flowchat")
def cli() -> None:
    """FlowChat from the terminal: every operator and tenant task over the services' HTTP
    APIs. Tables by default, --json (or --field NAME) anywhere on the line.

    Start here: docs/getting-started.md."""


for group in (
    tenants,
    numbers,
    keys,
    users,
    contacts,
    campaigns,
    templates,
    messages,
    dlq,
    endpoints,
    sandbox,
):
    # `flowchat --help` lists every task: each group's line names all its commands.
    group.short_help = ", ".join(group.commands)
    cli.add_command(group)


def run(argv: Sequence[str], state: State | None = None) -> int:
    """Run one command line; returns the exit status (never raises for a known error)."""
    st = state or State()
    args = list(argv)
    as_json = "--json" in args[: args.index("--")] if "--" in args else "--json" in args
    try:
        result: Any = cli.main(args, prog_name="flowchat", standalone_mode=False, obj=st)
        return int(result) if isinstance(result, int) else 0
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE if isinstance(exc, click.UsageError) else exc.exit_code
    except click.exceptions.Abort:
        sys.stderr.write("aborted\n")
        return 1
    except CliError as exc:
        output = Output(as_json=as_json)
        if as_json:
            output.json(exc.public())
        sys.stderr.write(f"flowchat: {exc}\n")
        return exc.exit_code
    finally:
        st.close()


def main() -> None:
    raise SystemExit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
