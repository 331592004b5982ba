"""messages.recipient_alias: the customer's other id (a BSUID or a phone number)

A message's ``recipient`` is the id the send used, as given: a WhatsApp id or a BSUID.
When a status names the customer by both (``StatusUpdate.customer``), the other one is
kept in ``recipient_alias`` so a lookup by recipient finds the message by either;
``pending_statuses`` keeps a held status's ids until its message is known. Existing
rows keep ``recipient_alias`` NULL (no status told us the other id).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE messages ADD COLUMN recipient_alias text")
    op.execute(
        "CREATE INDEX messages_tenant_recipient_alias_idx "
        "ON messages (tenant_id, recipient_alias, created_at DESC) "
        "WHERE recipient_alias IS NOT NULL"
    )
    op.execute("ALTER TABLE pending_statuses ADD COLUMN customer_wa_id text")
    op.execute("ALTER TABLE pending_statuses ADD COLUMN customer_user_id text")


def downgrade() -> None:
    op.execute("ALTER TABLE pending_statuses DROP COLUMN customer_user_id")
    op.execute("ALTER TABLE pending_statuses DROP COLUMN customer_wa_id")
    op.execute("DROP INDEX messages_tenant_recipient_alias_idx")
    op.execute("ALTER TABLE messages DROP COLUMN recipient_alias")
