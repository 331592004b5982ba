"""``python -m flowchat_relay`` runs the service."""

from __future__ import annotations

from flowchat_platform.runner import run_service
from flowchat_relay import SERVICE
from flowchat_relay.app import create_app
from flowchat_relay.settings import Settings


def main() -> None:
    run_service(SERVICE, Settings, create_app)


if __name__ == "__main__":
    main()
