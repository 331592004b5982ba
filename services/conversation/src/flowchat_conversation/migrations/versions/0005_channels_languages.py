"""The bot on every channel and in the customer's language: a per-tenant inbound limit
per customer, the customer's chosen language, product translations.

- ``bot_settings.inbound_limit_per_minute``: messages a customer may send a minute
  before the bot stops answering them (counted in Redis; the rest still reach history
  and the inbox).
- ``contacts.locale``: the language the customer chose ("español", the language menu);
  NULL: the tenant's default.
- ``products.translations``: ``{"es": {"name": …, "description": …}, …}``.

Revision ID: 0005_channels_languages
Revises: 0004_identity
Create Date: 2026-12-07
"""

from alembic import op

revision = "0005_channels_languages"
down_revision = "0004_identity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE bot_settings ADD COLUMN inbound_limit_per_minute integer NOT NULL"
        " DEFAULT 30 CHECK (inbound_limit_per_minute BETWEEN 1 AND 10000)"
    )
    op.execute("ALTER TABLE contacts ADD COLUMN locale text")
    op.execute("ALTER TABLE products ADD COLUMN translations jsonb NOT NULL DEFAULT '{}'::jsonb")


def downgrade() -> None:
    op.execute("ALTER TABLE products DROP COLUMN translations")
    op.execute("ALTER TABLE contacts DROP COLUMN locale")
    op.execute("ALTER TABLE bot_settings DROP COLUMN inbound_limit_per_minute")
