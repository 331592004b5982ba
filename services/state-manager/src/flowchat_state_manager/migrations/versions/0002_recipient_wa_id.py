"""messages.recipient in the one phone form: the WhatsApp id (E.164 digits, no '+')

The gateway's send API passed ``+E164`` through, so older records carry a ``+``;
new ones are stored without it (``recipients.stored_recipient``) and lookups by
recipient search for the WhatsApp id. The downgrade keeps the digits: which rows had
a ``+`` is not recorded, and both forms name the same number.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("UPDATE messages SET recipient = substr(recipient, 2) WHERE recipient LIKE '+%'")


def downgrade() -> None:
    pass
