"""The background sealing pass costs nothing at a start with nothing to do.

- Partial indexes of the rows still in clear (``events_unsealed``: a body stored before
  0004; ``attempts_unsealed``: an answer not encrypted yet;
  ``conversation_sequences_unsealed``: a counter keyed by an id, not its digest): empty
  once the pass has sealed everything, so the pass at start probes them instead of
  reading every event.
- ``sealing_state`` (``flowchat_platform.sealing.SealingState``): per table of tokens,
  the key its tokens were re-encrypted to, and the last row done while a rotation is
  under way: a rotation runs once per new key and resumes after a restart, instead of
  re-encrypting every token at every start while an old key is still configured.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from alembic import op

from flowchat_platform.sealing import SEALING_STATE_TABLE

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX events_unsealed ON events (id) WHERE body IS NOT NULL")
    op.execute("CREATE INDEX attempts_unsealed ON attempts (id) WHERE response <> ''")
    op.execute(
        "CREATE INDEX conversation_sequences_unsealed ON conversation_sequences "
        "(tenant_id, account_id, conversation) WHERE conversation !~ '^[0-9a-f]{64}$'"
    )
    op.execute(SEALING_STATE_TABLE)


def downgrade() -> None:
    op.execute("DROP TABLE sealing_state")
    for index in ("conversation_sequences_unsealed", "attempts_unsealed", "events_unsealed"):
        op.execute(f"DROP INDEX IF EXISTS {index}")
