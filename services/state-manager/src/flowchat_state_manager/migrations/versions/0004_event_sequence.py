"""message_events.sequence: a message's statuses in the order FlowChat learned them

Meta's timestamps have whole seconds, so a message's ``accepted``, ``sent`` and even
``read`` can share one, and ordering the history by them listed ``accepted`` after
``read``. Every status now takes a number from one sequence when FlowChat first learns
it (a status held in ``pending_statuses`` until its message is known keeps the number
and ``received_at`` of when it was held), and the history is listed by it; Meta's
``provider_timestamp`` stays beside it. Existing rows are numbered by
``(received_at, id)``, the order they were recorded in.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE SEQUENCE status_learned_seq AS bigint")
    op.execute("ALTER TABLE message_events ADD COLUMN sequence bigint")
    op.execute(
        """
        UPDATE message_events e SET sequence = n.seq
        FROM (SELECT id, nextval('status_learned_seq') AS seq
              FROM (SELECT id FROM message_events ORDER BY received_at, id) ordered) n
        WHERE e.id = n.id
        """
    )
    op.execute(
        "ALTER TABLE message_events ALTER COLUMN sequence SET DEFAULT nextval('status_learned_seq')"
    )
    op.execute("ALTER TABLE message_events ALTER COLUMN sequence SET NOT NULL")
    op.execute(
        "CREATE INDEX message_events_message_sequence_idx ON message_events (message_id, sequence)"
    )
    op.execute(
        "ALTER TABLE pending_statuses ADD COLUMN sequence bigint NOT NULL "
        "DEFAULT nextval('status_learned_seq')"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE pending_statuses DROP COLUMN sequence")
    op.execute("DROP INDEX message_events_message_sequence_idx")
    op.execute("ALTER TABLE message_events DROP COLUMN sequence")
    op.execute("DROP SEQUENCE status_learned_seq")
