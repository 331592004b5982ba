"""Customers' identities encrypted at rest (issue 28).

From this revision on every column that named a customer by an id in clear holds a
keyed digest of it instead (HMAC-SHA256 per tenant, ``flowchat_platform.privacy
.BlindIndex`` under ``FLOWCHAT_PRIVACY_KEY``): ``customer_aliases.alias`` and
``customer_key``, so the customer key in ``contacts``, ``orders``, ``handoffs``,
``reminders``, ``campaign_recipients``, ``handled_messages.conversation`` and the Redis
session and cart keys is a digest too. Lookups, uniqueness (one contact per tenant and
customer), joins and the partial indexes work on the digests unchanged.

The ids themselves are kept once, as Fernet tokens (``FLOWCHAT_CONVERSATION_ENCRYPTION
_KEYS``) beside their digest: ``customer_aliases.alias_enc``. Names likewise:
``contacts.name_enc`` (``name`` stays NULL), and the delivery address a customer
answers a Flow with: ``orders.delivery_address_enc`` (``delivery_address`` NULL), a
campaign send's template parameters (the contact's name, attributes):
``campaign_recipients.components_enc`` (``components`` NULL).

Rows stored before keep their ids in clear until the service's background pass seals
them (the key is not available to a migration); a customer met before the pass gets
to them is sealed on the spot, in the transaction of the message. The trigger that
makes every contact's key an alias of itself now leaves digests alone (the service
links them, with their token, before it writes the contact).

Revision ID: 0008_sealed_identities
Revises: 0007_privacy
Create Date: 2026-12-07
"""

from alembic import op

revision = "0008_sealed_identities"
down_revision = "0007_privacy"
branch_labels = None
depends_on = None

_KIND = (
    "CASE WHEN {c} LIKE '%.ENT.%' THEN 'parent' WHEN {c} LIKE '%.%' THEN 'bsuid' ELSE 'phone' END"
)


def _alias_trigger(*, skip_digests: bool) -> str:
    kind = _KIND.format(c="NEW.customer_wa_id")
    guard = "IF NEW.customer_wa_id ~ '^[0-9a-f]{64}$' THEN RETURN NULL; END IF;"
    return f"""
        CREATE OR REPLACE FUNCTION contacts_alias() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            {guard if skip_digests else ""}
            INSERT INTO customer_aliases (tenant_id, alias, customer_key, kind)
            VALUES (NEW.tenant_id, NEW.customer_wa_id, NEW.customer_wa_id, {kind})
            ON CONFLICT (tenant_id, alias) DO NOTHING;
            RETURN NULL;
        END
        $$
        """  # noqa: S608


def upgrade() -> None:
    op.execute("ALTER TABLE customer_aliases ADD COLUMN alias_enc bytea")
    op.execute("ALTER TABLE contacts ADD COLUMN name_enc bytea")
    op.execute("ALTER TABLE orders ADD COLUMN delivery_address_enc bytea")
    op.execute("ALTER TABLE campaign_recipients ADD COLUMN components_enc bytea")
    op.execute(_alias_trigger(skip_digests=True))


def downgrade() -> None:
    op.execute(_alias_trigger(skip_digests=False))
    op.execute("ALTER TABLE campaign_recipients DROP COLUMN components_enc")
    op.execute("ALTER TABLE orders DROP COLUMN delivery_address_enc")
    op.execute("ALTER TABLE contacts DROP COLUMN name_enc")
    op.execute("ALTER TABLE customer_aliases DROP COLUMN alias_enc")
