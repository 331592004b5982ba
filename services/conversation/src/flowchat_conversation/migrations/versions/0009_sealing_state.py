"""The background sealing pass costs nothing at a start with nothing to do.

- Partial indexes of the rows still naming a customer in clear (``*_unsealed``: their
  predicate is the one the pass in ``flowchat_conversation.sealing`` looks for them
  with): empty once the pass has sealed everything (new rows are written sealed), so the
  pass at start probes them instead of reading every table.
- ``sealing_state`` (``flowchat_platform.sealing.SealingState``): per table of tokens,
  the key its tokens were re-encrypted to, and the last row done while a rotation is
  under way: a rotation runs once per new key and resumes after a restart, instead of
  re-encrypting every token at every start while an old key is still configured.

Revision ID: 0009_sealing_state
Revises: 0008_sealed_identities
Create Date: 2026-12-07
"""

from alembic import op

from flowchat_platform.sealing import SEALING_STATE_TABLE

revision = "0009_sealing_state"
down_revision = "0008_sealed_identities"
branch_labels = None
depends_on = None

#: A key in clear (not a digest, not pseudonymised): the pass's ``_NOT_DIGEST``.
_CLEAR = "NOT ({c} ~ '^[0-9a-f]{{64}}$') AND {c} NOT LIKE 'erased:%'"

_UNSEALED = (
    ("customer_aliases", "customer_key"),
    ("contacts", "customer_wa_id"),
    ("orders", "customer_wa_id"),
    ("handoffs", "customer_wa_id"),
    ("reminders", "wa_id"),
    ("campaign_recipients", "wa_id"),
)


def upgrade() -> None:
    for table, column in _UNSEALED:
        op.execute(
            f"CREATE INDEX {table}_unsealed ON {table} (tenant_id, {column}) "
            f"WHERE {_CLEAR.format(c=column)}"
        )
    key = "split_part(conversation, ':', 3)"
    op.execute(
        "CREATE INDEX handled_messages_unsealed ON handled_messages "
        f"(tenant_id, provider_message_id) WHERE NOT ({key} ~ '^[0-9a-f]{{64}}$') "
        f"AND {key} <> ''"
    )
    op.execute(SEALING_STATE_TABLE)


def downgrade() -> None:
    op.execute("DROP TABLE sealing_state")
    for table, _ in (*_UNSEALED, ("handled_messages", "")):
        op.execute(f"DROP INDEX IF EXISTS {table}_unsealed")
