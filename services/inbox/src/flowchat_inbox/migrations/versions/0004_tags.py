"""conversations.tags (agents label conversations; the list filters by tag)

Revision ID: 0004_tags
Revises: 0003_history_search_gin
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_tags"
down_revision: str | None = "0003_history_search_gin"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE conversations ADD COLUMN tags text[] NOT NULL DEFAULT '{}'")
    op.execute("CREATE INDEX conversations_tags ON conversations USING gin (tags)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS conversations_tags")
    op.execute("ALTER TABLE conversations DROP COLUMN IF EXISTS tags")
