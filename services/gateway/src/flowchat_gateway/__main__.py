"""``python -m flowchat_gateway serve`` runs the service; ``--help`` (or nothing) only helps."""

from __future__ import annotations

from flowchat_platform.entry import service_main


def serve() -> None:
    from flowchat_gateway import SERVICE
    from flowchat_gateway.app import create_app
    from flowchat_gateway.settings import Settings
    from flowchat_platform.runner import run_service

    run_service(SERVICE, Settings, create_app)


def main() -> None:
    raise SystemExit(service_main("flowchat_gateway", serve))


if __name__ == "__main__":
    main()
