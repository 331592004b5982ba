"""index accounts by WABA id (the internal by-waba lookup)

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX accounts_waba_idx ON accounts (waba_id) WHERE waba_id IS NOT NULL")


def downgrade() -> None:
    op.execute("DROP INDEX accounts_waba_idx")
