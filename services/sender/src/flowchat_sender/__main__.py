"""``python -m flowchat_sender serve`` runs the service; ``dlq …`` the DLQ tool
(:mod:`flowchat_sender.cli`); ``--help`` (or nothing) only helps."""

from __future__ import annotations

from flowchat_platform.entry import service_main


def serve() -> None:
    from flowchat_platform.runner import run_service
    from flowchat_sender import SERVICE
    from flowchat_sender.app import create_app
    from flowchat_sender.settings import Settings

    run_service(SERVICE, Settings, create_app)


def dlq(argv: list[str]) -> int:
    from flowchat_sender.cli import dlq_main

    return dlq_main(argv)


def main() -> None:
    raise SystemExit(
        service_main(
            "flowchat_sender",
            serve,
            commands={
                "dlq": (
                    "list or replay the DLQ straight on the broker (flowchat dlq: over HTTP)",
                    dlq,
                )
            },
        )
    )


if __name__ == "__main__":
    main()
