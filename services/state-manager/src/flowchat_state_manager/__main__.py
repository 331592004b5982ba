"""``python -m flowchat_state_manager`` runs the service;
``python -m flowchat_state_manager purge`` runs one retention purge and exits."""

from __future__ import annotations

import sys

from flowchat_platform.runner import run_service
from flowchat_state_manager import SERVICE
from flowchat_state_manager.app import create_app
from flowchat_state_manager.settings import Settings


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "purge":
        from flowchat_state_manager.cli import purge_main

        raise SystemExit(purge_main(args[1:]))
    run_service(SERVICE, Settings, create_app)


if __name__ == "__main__":
    main()
