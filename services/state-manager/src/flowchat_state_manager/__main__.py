"""``python -m flowchat_state_manager`` (or ``serve``) runs the service; any other
command (``purge``, ``--help``) is the CLI's (:mod:`flowchat_state_manager.cli`)."""

from __future__ import annotations

import sys

from flowchat_platform.runner import run_service
from flowchat_state_manager import SERVICE
from flowchat_state_manager.app import create_app
from flowchat_state_manager.settings import Settings


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] == "serve":
        run_service(SERVICE, Settings, create_app)
        return
    from flowchat_state_manager.cli import main as cli

    raise SystemExit(cli(args))


if __name__ == "__main__":
    main()
