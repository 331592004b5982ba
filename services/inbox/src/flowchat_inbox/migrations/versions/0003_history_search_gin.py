"""messages: the search index keyed by tenant too (btree_gin)

Search step 2 (``Repository.search``) finds what the tenant's newest messages did not
hold through the GIN index. With ``search`` alone the index yields every tenant's
matches, intersected with the tenant's whole range of ``messages_tenant_recent`` as a
bitmap (two million entries for the largest tenant of the 10 M benchmark). With
``(tenant_id, search)`` the intersection happens inside the index, which skips the
tenant's entries that the words do not match. The single-column index served nothing
else and goes.

Revision ID: 0003_history_search_gin
Revises: 0002_history_reads
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003_history_search_gin"
down_revision: str | None = "0002_history_reads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # btree_gin: GIN operator classes for plain types (text here); a trusted extension
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    op.execute("CREATE INDEX messages_tenant_search ON messages USING gin (tenant_id, search)")
    op.execute("DROP INDEX IF EXISTS messages_search")


def downgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS messages_search ON messages USING gin (search)")
    op.execute("DROP INDEX IF EXISTS messages_tenant_search")
