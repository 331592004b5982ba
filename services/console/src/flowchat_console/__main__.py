"""``python -m flowchat_console serve`` runs the console; ``--help`` (or nothing) only helps."""

from __future__ import annotations

from flowchat_platform.entry import service_main


def serve() -> None:
    from flowchat_console import SERVICE
    from flowchat_console.app import create_app
    from flowchat_console.settings import Settings
    from flowchat_platform.runner import run_service

    run_service(SERVICE, Settings, create_app)


def main() -> None:
    raise SystemExit(service_main("flowchat_console", serve))


if __name__ == "__main__":
    main()
