"""Customers' data encrypted at rest (issue 28): Fernet tokens beside keyed digests, and a
blind token index for search.

From this revision on the inbox writes:

- ``threads.customer_key`` / ``wa_id`` / ``user_id`` and ``aliases.alias`` /
  ``customer_key`` as keyed digests of the ids (HMAC-SHA256 per tenant,
  ``flowchat_platform.privacy.BlindIndex``: the unique keys and lookups keep working),
  with Fernet tokens to read them back (``threads.customer_key_enc``, ``wa_id_enc``,
  ``user_id_enc``, ``aliases.customer_key_enc``); ``customer_name`` and
  ``last_preview`` only as tokens (``customer_name_enc``, ``last_preview_enc``);
- ``messages.sealed``: one Fernet token of ``[body, content]``; ``body`` and ``content``
  stay NULL (``content`` becomes nullable);
- ``messages.search_tokens``: a blind token per word of the text (``bigint[]``, GIN
  index ``messages_search_tokens``) instead of the ``search`` tsvector, which is
  dropped with its index (it would index nothing: the text is no longer stored).

Rows stored before keep their values in clear until the service's background pass seals
them (the keys are not available to a migration); until then they are read as they are,
and their messages are not found by search. The downgrade drops the tokens and brings
the tsvector back: sealed rows keep only digests.

Revision ID: 0006_sealed
Revises: 0005_tenant_retention
Create Date: 2026-12-07
"""

from alembic import op

revision: str = "0006_sealed"
down_revision: str | None = "0005_tenant_retention"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE threads ADD COLUMN customer_key_enc bytea, ADD COLUMN wa_id_enc bytea, "
        "ADD COLUMN user_id_enc bytea, ADD COLUMN customer_name_enc bytea, "
        "ADD COLUMN last_preview_enc bytea"
    )
    op.execute("ALTER TABLE aliases ADD COLUMN customer_key_enc bytea")
    op.execute(
        "ALTER TABLE messages ADD COLUMN sealed bytea, ADD COLUMN search_tokens bigint[], "
        "ALTER COLUMN content DROP NOT NULL"
    )
    op.execute("DROP INDEX IF EXISTS messages_tenant_search")
    op.execute("ALTER TABLE messages DROP COLUMN search")
    # The tokens are keyed by tenant: the index alone yields one tenant's matches.
    op.execute("CREATE INDEX messages_search_tokens ON messages USING gin (search_tokens)")
    # What the background pass has left to seal (empty once it is done: new rows are
    # written sealed), so a pass at start over a sealed database reads nothing.
    op.execute("CREATE INDEX threads_unsealed ON threads (id) WHERE customer_key_enc IS NULL")
    op.execute(
        "CREATE INDEX aliases_unsealed ON aliases (tenant_id, alias) WHERE customer_key_enc IS NULL"
    )
    op.execute("CREATE INDEX messages_unsealed ON messages (id) WHERE sealed IS NULL")


def downgrade() -> None:
    for index in ("messages_unsealed", "aliases_unsealed", "threads_unsealed"):
        op.execute(f"DROP INDEX IF EXISTS {index}")
    op.execute("DROP INDEX IF EXISTS messages_search_tokens")
    op.execute(
        "ALTER TABLE messages ADD COLUMN search tsvector GENERATED ALWAYS AS "
        "(to_tsvector('simple', coalesce(body, ''))) STORED"
    )
    op.execute("CREATE INDEX messages_tenant_search ON messages USING gin (tenant_id, search)")
    op.execute("UPDATE messages SET content = '{}'::jsonb WHERE content IS NULL")
    op.execute(
        "ALTER TABLE messages DROP COLUMN search_tokens, DROP COLUMN sealed, "
        "ALTER COLUMN content SET NOT NULL"
    )
    op.execute("ALTER TABLE aliases DROP COLUMN customer_key_enc")
    op.execute(
        "ALTER TABLE threads DROP COLUMN last_preview_enc, DROP COLUMN customer_name_enc, "
        "DROP COLUMN user_id_enc, DROP COLUMN wa_id_enc, DROP COLUMN customer_key_enc"
    )
