"""``python -m flowchat_conversation`` runs the service; with arguments, the CLI
(:mod:`flowchat_conversation.cli`: ``campaign …``, ``--help``)."""

import sys


def main() -> None:
    if len(sys.argv) > 1:  # the CLI (cli.py), never the service: --help only helps
        from flowchat_conversation.cli import main as cli

        raise SystemExit(cli(sys.argv[1:]))
    from flowchat_conversation import SERVICE
    from flowchat_conversation.app import create_app
    from flowchat_conversation.settings import Settings
    from flowchat_platform.runner import run_service

    run_service(SERVICE, Settings, create_app)


if __name__ == "__main__":
    main()
