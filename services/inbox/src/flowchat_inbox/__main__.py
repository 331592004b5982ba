"""``python -m flowchat_inbox serve`` runs the service; ``--help`` (or nothing) only helps."""

from __future__ import annotations

from flowchat_platform.entry import service_main


def serve() -> None:
    from flowchat_inbox import SERVICE
    from flowchat_inbox.app import create_app
    from flowchat_inbox.settings import Settings
    from flowchat_platform.runner import run_service

    run_service(SERVICE, Settings, create_app)


def main() -> None:
    raise SystemExit(service_main("flowchat_inbox", serve))


if __name__ == "__main__":
    main()
