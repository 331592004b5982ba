"""``python -m flowchat_cli`` is ``flowchat``."""

from flowchat_cli.main import main

main()
