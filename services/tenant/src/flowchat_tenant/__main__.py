"""``python -m flowchat_tenant`` runs the service; sub-commands are the operator's CLI.

- ``python -m flowchat_tenant`` (or ``serve``) — serve the HTTP API (port 8701).
- ``python -m flowchat_tenant tenant create|list|suspend|activate``,
  ``number add|list``, ``apikey create|list|revoke``, ``keys rotate|generate`` — see
  :mod:`flowchat_tenant.cli` (``--help`` on any of them).
- ``rotate-keys`` and ``generate-key`` — the same as ``keys rotate`` / ``keys generate``.
"""

from __future__ import annotations

import sys

from flowchat_platform.runner import run_service
from flowchat_tenant import SERVICE
from flowchat_tenant.app import create_app
from flowchat_tenant.settings import Settings

ALIASES = {"rotate-keys": ["keys", "rotate"], "generate-key": ["keys", "generate"]}


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "serve"
    if command == "serve":
        run_service(SERVICE, Settings, create_app)
        return 0
    from flowchat_tenant.cli import main as cli

    return cli(ALIASES[command] + argv[1:] if command in ALIASES else argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
