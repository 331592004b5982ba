"""endpoints' signing secrets encrypted at rest: secret_enc, previous_secret_enc

The plain columns stay (nullable) for rows stored before: a migration has no key to
encrypt them with, so the relay encrypts them at start-up
(``Repository.encrypt_clear_secrets``) and empties the plain columns.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE endpoints ADD COLUMN secret_enc bytea, ADD COLUMN previous_secret_enc bytea"
    )
    op.execute("ALTER TABLE endpoints ALTER COLUMN secret DROP NOT NULL")


def downgrade() -> None:
    op.execute("ALTER TABLE endpoints DROP COLUMN secret_enc, DROP COLUMN previous_secret_enc")
