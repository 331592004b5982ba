"""``python -m flowchat_state_manager serve`` runs the service; ``purge`` one retention
purge (:mod:`flowchat_state_manager.cli`); ``--help`` (or nothing) only helps."""

from __future__ import annotations

from flowchat_platform.entry import Command, service_main


def serve() -> None:
    from flowchat_platform.runner import run_service
    from flowchat_state_manager import SERVICE
    from flowchat_state_manager.app import create_app
    from flowchat_state_manager.settings import Settings

    run_service(SERVICE, Settings, create_app)


def purge(argv: list[str]) -> int:
    from flowchat_state_manager.cli import purge_main

    return purge_main(argv)


COMMANDS: dict[str, Command] = {
    "purge": ("delete message records older than the retention, then exit", purge)
}


def main(argv: list[str] | None = None) -> int:
    return service_main("flowchat_state_manager", serve, argv, COMMANDS)


if __name__ == "__main__":
    raise SystemExit(main())
