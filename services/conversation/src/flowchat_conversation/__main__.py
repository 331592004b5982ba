"""``python -m flowchat_conversation serve`` runs the service; ``--help`` (or nothing) only
helps. Campaigns from the terminal: ``flowchat campaigns …`` (docs/cli.md)."""

from __future__ import annotations

from flowchat_platform.entry import service_main


def serve() -> None:
    from flowchat_conversation import SERVICE
    from flowchat_conversation.app import create_app
    from flowchat_conversation.settings import Settings
    from flowchat_platform.runner import run_service

    run_service(SERVICE, Settings, create_app)


def main() -> None:
    raise SystemExit(service_main("flowchat_conversation", serve))


if __name__ == "__main__":
    main()
