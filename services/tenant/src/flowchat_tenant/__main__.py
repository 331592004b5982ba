"""``python -m flowchat_tenant`` runs the service; sub-commands manage the keyring.

- ``python -m flowchat_tenant`` — serve the HTTP API (port 8701).
- ``python -m flowchat_tenant rotate-keys`` — re-encrypt every secret under the first key
  of ``FLOWCHAT_TENANT_ENCRYPTION_KEYS`` (older keys keep decrypting meanwhile).
- ``python -m flowchat_tenant generate-key`` — print a new Fernet key.
"""

from __future__ import annotations

import sys

from flowchat_platform.runner import run_service

from flowchat_tenant import SERVICE
from flowchat_tenant.app import create_app
from flowchat_tenant.settings import Settings

USAGE = "usage: python -m flowchat_tenant [serve | rotate-keys | generate-key]\n"


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "serve"
    if command == "serve":
        run_service(SERVICE, Settings, create_app)
        return 0
    if command == "rotate-keys":
        from flowchat_tenant.cli import rotate_keys_command

        return rotate_keys_command()
    if command == "generate-key":
        from flowchat_tenant.crypto import SecretBox

        sys.stdout.write(SecretBox.generate_key() + "\n")
        return 0
    sys.stderr.write(USAGE)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
