"""``python -m flowchat_tenant serve`` runs the service; ``--help`` (or nothing) only helps.

The other commands need the database and the encryption keyring, so they run here, beside
the service (:mod:`flowchat_tenant.cli`): ``keys rotate|generate`` (``rotate-keys`` and
``generate-key`` are the same) and the operator's direct-to-database ``tenant``,
``number``, ``apikey``. Day-to-day tasks go through the HTTP API: ``flowchat --help``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from flowchat_platform.entry import Command, service_main


def serve() -> None:
    from flowchat_platform.runner import run_service
    from flowchat_tenant import SERVICE
    from flowchat_tenant.app import create_app
    from flowchat_tenant.settings import Settings

    run_service(SERVICE, Settings, create_app)


def _cli(prefix: list[str]) -> Callable[[list[str]], int]:
    def run(argv: list[str]) -> int:
        from flowchat_tenant.cli import main as cli

        return cli([*prefix, *argv])

    return run


COMMANDS: dict[str, Command] = {
    "keys": ("the encryption keyring: keys rotate | keys generate", _cli(["keys"])),
    "rotate-keys": (
        "re-encrypt every secret under the first key (= keys rotate)",
        _cli(["keys", "rotate"]),
    ),
    "generate-key": ("print a new encryption key (= keys generate)", _cli(["keys", "generate"])),
    "tenant": ("tenants, straight on the database (flowchat tenants: over HTTP)", _cli(["tenant"])),
    "number": ("numbers, straight on the database (flowchat numbers: over HTTP)", _cli(["number"])),
    "apikey": ("API keys, straight on the database (flowchat keys: over HTTP)", _cli(["apikey"])),
}


def main(argv: list[str]) -> int:
    return service_main("flowchat_tenant", serve, argv, COMMANDS)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
