"""Per-tenant retention of the webhook events and delivery log:
``tenant_retention (tenant_id, delivery_days)``; a tenant without a row keeps the
platform's default (``FLOWCHAT_RELAY_RETENTION_DAYS``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE tenant_retention (
            tenant_id      text PRIMARY KEY,
            delivery_days  integer NOT NULL CHECK (delivery_days BETWEEN 1 AND 3650),
            updated_at     timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS tenant_retention")
