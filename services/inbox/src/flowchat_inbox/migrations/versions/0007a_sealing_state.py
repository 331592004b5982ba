"""A key rotation runs once per new key (``flowchat_platform.sealing.SealingState``).

``sealing_state``: per table of tokens (threads, aliases, messages), the key its tokens
were re-encrypted to, and the last row done while a rotation is under way. Before, the
background pass re-encrypted every token at every start while an old key was still
configured. (The rows left in clear are found through the ``*_unsealed`` partial
indexes of ``0006_sealed``.)

Revision ID: 0007a_sealing_state
Revises: 0006_sealed
Create Date: 2026-12-07
"""

from alembic import op

from flowchat_platform.sealing import SEALING_STATE_TABLE

revision: str = "0007a_sealing_state"
down_revision: str | None = "0006_sealed"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(SEALING_STATE_TABLE)


def downgrade() -> None:
    op.execute("DROP TABLE sealing_state")
