"""Events and the delivery log encrypted at rest (issue 28).

- ``events.body_enc`` / ``meta_body_enc``: Fernet tokens of the exact bodies delivered
  (``FLOWCHAT_RELAY_ENCRYPTION_KEYS``); ``body`` / ``meta_body`` (jsonb) stay, nullable,
  for the rows stored before, until the relay's background pass seals them.
- ``events.customers``: keyed digests (HMAC-SHA256, ``flowchat_platform.privacy``) of
  every customer id the event names: an erasure and an export find a customer's events
  by them (GIN index), without the ids in clear.
- ``attempts.response_enc``: the endpoint's answer (it may echo the body), encrypted;
  ``response`` is left empty.
- ``conversation_sequences.conversation`` holds the customer's digest from now on (the
  relay rewrites the rows in clear at start).

A migration has no key: rows stored before stay readable in clear until sealed. The
downgrade drops the tokens (sealed rows lose their bodies: take a backup first).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE events ADD COLUMN body_enc bytea, ADD COLUMN meta_body_enc bytea, "
        "ADD COLUMN customers text[] NOT NULL DEFAULT '{}'"
    )
    op.execute("ALTER TABLE events ALTER COLUMN body DROP NOT NULL")
    op.execute("CREATE INDEX events_customers ON events USING gin (customers)")
    op.execute("ALTER TABLE attempts ADD COLUMN response_enc bytea")


def downgrade() -> None:
    op.execute("DELETE FROM events WHERE body IS NULL")
    op.execute("ALTER TABLE events ALTER COLUMN body SET NOT NULL")
    op.execute("DROP INDEX IF EXISTS events_customers")
    op.execute(
        "ALTER TABLE events DROP COLUMN body_enc, DROP COLUMN meta_body_enc, DROP COLUMN customers"
    )
    op.execute("ALTER TABLE attempts DROP COLUMN response_enc")
