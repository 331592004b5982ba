"""messages: a tenant's messages newest first (search walks it); thread → tenant statistics

A tenant-wide search is ``tenant_id = $1 AND search @@ q ORDER BY occurred_at DESC, id
DESC LIMIT n``. With only the GIN index, a common word meant every match of every tenant
read from the heap and sorted (seconds at 10 M messages). With this index the planner
can walk the tenant's messages newest first and stop at the n-th match, and keeps the
GIN index for rare words (``make bench ARGS='--only inbox'``).

A thread page is ``tenant_id = $1 AND thread_id = $2``: a thread's tenant is implied by
its id, but the planner multiplied the two selectivities, took a 3,000-message thread
for 27 rows, and read and sorted all of them (0.6 s) instead of the first 51 in
``messages_thread`` order. The dependency statistics tell it (< 1 ms).

Revision ID: 0002_history_reads
Revises: 0001
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002_history_reads"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX messages_tenant_recent ON messages (tenant_id, occurred_at DESC, id DESC)"
    )
    op.execute(
        "CREATE STATISTICS messages_thread_tenant (dependencies) ON tenant_id, thread_id "
        "FROM messages"
    )
    op.execute("ANALYZE messages")


def downgrade() -> None:
    op.execute("DROP STATISTICS IF EXISTS messages_thread_tenant")
    op.execute("DROP INDEX IF EXISTS messages_tenant_recent")
