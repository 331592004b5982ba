"""``python -m flowchat_sender``: the service, or the DLQ tool (:mod:`flowchat_sender.cli`)."""

from __future__ import annotations

from flowchat_sender.cli import main

if __name__ == "__main__":
    main()
