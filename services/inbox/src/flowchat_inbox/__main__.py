"""``python -m flowchat_inbox`` runs the service."""

from __future__ import annotations

from flowchat_inbox import SERVICE
from flowchat_inbox.app import create_app
from flowchat_inbox.settings import Settings
from flowchat_platform.runner import run_service


def main() -> None:
    run_service(SERVICE, Settings, create_app)


if __name__ == "__main__":
    main()
