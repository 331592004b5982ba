"""``python -m flowchat_sandbox serve`` runs the sandbox; ``--help`` (or nothing) only helps."""

from __future__ import annotations

from flowchat_platform.entry import service_main


def serve() -> None:
    from flowchat_platform.runner import run_service
    from flowchat_sandbox.app import create_app
    from flowchat_sandbox.settings import SERVICE, Settings

    run_service(SERVICE, Settings, create_app)


def main() -> None:
    raise SystemExit(service_main("flowchat_sandbox", serve))


if __name__ == "__main__":
    main()
