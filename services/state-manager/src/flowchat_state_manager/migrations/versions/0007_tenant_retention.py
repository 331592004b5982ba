"""Per-tenant retention of message records: ``tenant_retention (tenant_id, message_days)``;
a tenant without a row keeps the platform's default (``FLOWCHAT_STATE_MANAGER_RETENTION_DAYS``).

A week partition is dropped once it is older than every tenant's retention; the rows of
tenants that keep fewer days are deleted from the partitions still there.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


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
