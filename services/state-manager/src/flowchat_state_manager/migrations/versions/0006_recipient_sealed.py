"""Customers' ids encrypted at rest: ``messages.recipient_enc`` / ``recipient_alias_enc``
(Fernet tokens under ``FLOWCHAT_STATE_MANAGER_ENCRYPTION_KEYS``).

From this revision on ``recipient`` and ``recipient_alias`` hold keyed digests of the ids
(HMAC-SHA256, ``flowchat_platform.privacy.BlindIndex``), so lookups by recipient, their
indexes and equality keep working without the ids in clear. Rows stored before keep
their ids in clear until the service's background pass seals them (the key is not
available to a migration); reads fall back to the clear value until then. The
downgrade drops the tokens: sealed rows keep only digests.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE messages ADD COLUMN recipient_enc bytea, ADD COLUMN recipient_alias_enc bytea"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE messages DROP COLUMN recipient_alias_enc, DROP COLUMN recipient_enc")
