"""Order lifecycle (issue 25): draft orders per open cart, tracking, who cancelled,
order-update templates outside the 24 h window, gapless invoice and credit-note numbers
per tenant, discount codes, credit notes, payment links.

* ``orders``: at most one ``draft`` per conversation (partial unique index); a draft
  becomes the confirmed order (same id) when the customer confirms.
* ``document_counters (tenant_id, kind)``: the next number of each kind of document;
  taken with ``UPDATE … RETURNING`` inside the transaction that issues the document,
  so a rolled-back issue gives its number back (no gaps) and concurrent issues queue
  on the counter's row lock.
* ``credit_notes``: issued when an order with payments is cancelled; the invoice is
  then ``credited``.

Revision ID: 0006_order_lifecycle
Revises: 0005_channels_languages
Create Date: 2026-12-07
"""

from alembic import op

revision = "0006_order_lifecycle"
down_revision = "0005_channels_languages"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE orders
            ADD COLUMN tracking_number text,
            ADD COLUMN tracking_url text,
            ADD COLUMN cancelled_by text
                CHECK (cancelled_by IN ('customer', 'tenant', 'system')),
            ADD COLUMN discount_code text,
            ADD COLUMN delivery_address jsonb
        """
    )
    op.execute("ALTER TABLE products ADD COLUMN catalog_id text, ADD COLUMN retailer_id text")
    op.execute(
        "CREATE INDEX products_retailer ON products (tenant_id, retailer_id) "
        "WHERE retailer_id IS NOT NULL"
    )
    op.execute(
        "CREATE UNIQUE INDEX orders_one_draft ON orders (tenant_id, account_id, customer_wa_id) "
        "WHERE status = 'draft'"
    )
    op.execute(
        """
        ALTER TABLE bot_settings
            ADD COLUMN order_template_name text,
            ADD COLUMN order_template_language text,
            ADD COLUMN online_payments boolean NOT NULL DEFAULT false,
            ADD COLUMN address_flow_id text
        """
    )
    op.execute("ALTER TABLE order_events DROP CONSTRAINT IF EXISTS order_events_notification_check")
    op.execute(
        "ALTER TABLE order_events ADD CONSTRAINT order_events_notification_check "
        "CHECK (notification IN ('sent', 'template', 'needs_template', 'none'))"
    )
    op.execute("ALTER TABLE invoices DROP CONSTRAINT IF EXISTS invoices_status_check")
    op.execute(
        "ALTER TABLE invoices ADD CONSTRAINT invoices_status_check "
        "CHECK (status IN ('unpaid', 'paid', 'void', 'credited'))"
    )
    op.execute(
        """
        ALTER TABLE invoices
            ADD COLUMN sequence bigint,
            ADD COLUMN payment_link text,
            ADD COLUMN payment_link_id text
        """
    )
    op.execute("CREATE UNIQUE INDEX invoices_tenant_number ON invoices (tenant_id, number)")
    op.execute(
        """
        CREATE TABLE document_counters (
            tenant_id  text NOT NULL,
            kind       text NOT NULL CHECK (kind IN ('invoice', 'credit_note')),
            last_value bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (tenant_id, kind)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE discount_codes (
            tenant_id    text NOT NULL,
            code         text NOT NULL,
            rate         numeric(7, 6) NOT NULL CHECK (rate > 0 AND rate < 1),
            max_uses     integer CHECK (max_uses > 0),
            uses         integer NOT NULL DEFAULT 0,
            min_subtotal numeric(18, 4),
            expires_at   timestamptz,
            created_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, code),
            CHECK (max_uses IS NULL OR uses <= max_uses)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE credit_notes (
            credit_note_id text PRIMARY KEY,
            tenant_id      text NOT NULL,
            invoice_id     text NOT NULL REFERENCES invoices (invoice_id) ON DELETE CASCADE,
            order_id       text NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
            number         text NOT NULL,
            sequence       bigint NOT NULL,
            currency       char(3) NOT NULL,
            amount         numeric(18, 4) NOT NULL CHECK (amount > 0),
            reason         text,
            issued_at      timestamptz NOT NULL DEFAULT now(),
            UNIQUE (tenant_id, number),
            UNIQUE (invoice_id)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS credit_notes")
    op.execute("DROP TABLE IF EXISTS discount_codes")
    op.execute("DROP TABLE IF EXISTS document_counters")
    op.execute("DROP INDEX IF EXISTS invoices_tenant_number")
    op.execute(
        "ALTER TABLE invoices DROP COLUMN IF EXISTS sequence, "
        "DROP COLUMN IF EXISTS payment_link, DROP COLUMN IF EXISTS payment_link_id"
    )
    op.execute("ALTER TABLE invoices DROP CONSTRAINT IF EXISTS invoices_status_check")
    op.execute(
        "ALTER TABLE invoices ADD CONSTRAINT invoices_status_check "
        "CHECK (status IN ('unpaid', 'paid', 'void'))"
    )
    op.execute("ALTER TABLE order_events DROP CONSTRAINT IF EXISTS order_events_notification_check")
    op.execute(
        "ALTER TABLE order_events ADD CONSTRAINT order_events_notification_check "
        "CHECK (notification IN ('sent', 'needs_template', 'none'))"
    )
    op.execute(
        "ALTER TABLE bot_settings DROP COLUMN IF EXISTS order_template_name, "
        "DROP COLUMN IF EXISTS order_template_language, DROP COLUMN IF EXISTS online_payments, "
        "DROP COLUMN IF EXISTS address_flow_id"
    )
    op.execute("DROP INDEX IF EXISTS orders_one_draft")
    op.execute("DROP INDEX IF EXISTS products_retailer")
    op.execute(
        "ALTER TABLE products DROP COLUMN IF EXISTS catalog_id, DROP COLUMN IF EXISTS retailer_id"
    )
    op.execute(
        "ALTER TABLE orders DROP COLUMN IF EXISTS tracking_number, "
        "DROP COLUMN IF EXISTS tracking_url, DROP COLUMN IF EXISTS cancelled_by, "
        "DROP COLUMN IF EXISTS discount_code, DROP COLUMN IF EXISTS delivery_address"
    )
