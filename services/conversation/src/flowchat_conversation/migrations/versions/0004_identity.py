"""Customers are identities: every id of a person (phone number, BSUID, parent BSUID)
is an alias of one customer key.

``customer_aliases (tenant_id, alias) → customer_key``: the key is what ``contacts``,
``orders``, ``handoffs``, ``reminders``, ``campaign_recipients`` and the bot's sessions
hold in their ``customer_wa_id`` / ``wa_id`` columns. Rows stored before BSUIDs keep
their phone number as key: each existing contact (and each customer of an order) is
its own alias here, so a message carrying that phone and a BSUID finds the customer
and links the BSUID to it. A trigger keeps the invariant for every new contact,
whatever writes it (the bot, the API, an import, a webhook).

Revision ID: 0004_identity
Revises: 0002_commerce, 0003_outreach
Create Date: 2026-12-06
"""

from alembic import op

revision = "0004_identity"
down_revision = ("0002_commerce", "0003_outreach")
branch_labels = None
depends_on = None

_KIND = (
    "CASE WHEN {c} LIKE '%.ENT.%' THEN 'parent' WHEN {c} LIKE '%.%' THEN 'bsuid' ELSE 'phone' END"
)


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE customer_aliases (
            tenant_id     text NOT NULL,
            alias         text NOT NULL,
            customer_key  text NOT NULL,
            kind          text NOT NULL CHECK (kind IN ('phone', 'bsuid', 'parent')),
            linked_at     timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, alias)
        )
        """
    )
    op.execute("CREATE INDEX customer_aliases_key ON customer_aliases (tenant_id, customer_key)")
    kind = _KIND.format(c="k.customer_wa_id")
    op.execute(
        f"""
        INSERT INTO customer_aliases (tenant_id, alias, customer_key, kind)
        SELECT k.tenant_id, k.customer_wa_id, k.customer_wa_id, {kind}
        FROM (SELECT tenant_id, customer_wa_id FROM contacts
              UNION SELECT tenant_id, customer_wa_id FROM orders) AS k
        ON CONFLICT (tenant_id, alias) DO NOTHING
        """  # noqa: S608
    )
    new_kind = _KIND.format(c="NEW.customer_wa_id")
    op.execute(
        f"""
        CREATE FUNCTION contacts_alias() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO customer_aliases (tenant_id, alias, customer_key, kind)
            VALUES (NEW.tenant_id, NEW.customer_wa_id, NEW.customer_wa_id, {new_kind})
            ON CONFLICT (tenant_id, alias) DO NOTHING;
            RETURN NULL;
        END
        $$
        """  # noqa: S608
    )
    op.execute(
        "CREATE TRIGGER contacts_alias AFTER INSERT ON contacts "
        "FOR EACH ROW EXECUTE FUNCTION contacts_alias()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS contacts_alias ON contacts")
    op.execute("DROP FUNCTION IF EXISTS contacts_alias()")
    op.execute("DROP TABLE IF EXISTS customer_aliases")
