"""The start-up sealing pass made O(1) when there is nothing to do.

- ``messages_unsealed``: a partial index on ``messages (id)`` holding only the rows whose
  recipient ids are still in clear (stored before encryption at rest, revision 0006):
  an id column with no token that is neither a keyed digest (64 hex) nor a pseudonym
  (``erased:``), as :func:`flowchat_platform.privacy.is_sealed` decides. The sealing pass
  walks this index instead of every message; once every row is sealed it is empty and a
  start costs one probe.
- ``sealing_state``: the services' shared table (:mod:`flowchat_platform.sealing`):
  under ``messages``, the newest key's id once a rotation pass (every token re-encrypted
  under the newest key) has finished; a start whose newest key is the one recorded does
  not walk the table again.

On a table of existing rows the index is built by one scan of every partition.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

from flowchat_platform.sealing import SEALING_STATE_TABLE

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: An id column neither a keyed digest nor a pseudonym (``flowchat_platform.privacy.is_sealed``).
_CLEAR = "!~ '^([0-9a-f]{64}$|erased:)'"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE INDEX messages_unsealed ON messages (id)
        WHERE (recipient_enc IS NULL AND recipient {_CLEAR})
           OR (recipient_alias_enc IS NULL AND recipient_alias {_CLEAR})
        """
    )
    op.execute(SEALING_STATE_TABLE)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS sealing_state")
    op.execute("DROP INDEX IF EXISTS messages_unsealed")
