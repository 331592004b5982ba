"""``python -m flowchat_relay serve`` runs the service; ``--help`` (or nothing) only helps."""

from __future__ import annotations

from flowchat_platform.entry import service_main


def serve() -> None:
    from flowchat_platform.runner import run_service
    from flowchat_relay import SERVICE
    from flowchat_relay.app import create_app
    from flowchat_relay.settings import Settings

    run_service(SERVICE, Settings, create_app)


def main() -> None:
    raise SystemExit(service_main("flowchat_relay", serve))


if __name__ == "__main__":
    main()
