"""Per-tenant retention of message content: ``tenant_retention (tenant_id, message_days)``;
a tenant without a row keeps the platform's default (``FLOWCHAT_INBOX_RETENTION_DAYS``).

Revision ID: 0005_tenant_retention
Revises: 0004_tags
Create Date: 2026-12-07
"""

from alembic import op

revision: str = "0005_tenant_retention"
down_revision: str | None = "0004_tags"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE tenant_retention (
            tenant_id     text PRIMARY KEY,
            message_days  integer NOT NULL CHECK (message_days BETWEEN 1 AND 3650),
            updated_at    timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS tenant_retention")
