"""Bot settings, catalog, handled inbound messages, contacts, orders.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE bot_settings (
            tenant_id      text PRIMARY KEY,
            business_name  text NOT NULL,
            currency       char(3) NOT NULL DEFAULT 'USD',
            tax_rate       numeric(7, 6) NOT NULL DEFAULT 0 CHECK (tax_rate >= 0 AND tax_rate < 1),
            locale         text NOT NULL DEFAULT 'en',
            welcome_text   text,
            payment_instructions text,
            updated_at     timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE products (
            tenant_id    text NOT NULL,
            sku          text NOT NULL,
            name         text NOT NULL,
            description  text NOT NULL DEFAULT '',
            price        numeric(18, 4) NOT NULL CHECK (price >= 0),
            currency     char(3) NOT NULL,
            category     text NOT NULL,
            stock        integer NOT NULL DEFAULT 0 CHECK (stock >= 0),
            available    boolean NOT NULL DEFAULT true,
            created_at   timestamptz NOT NULL DEFAULT now(),
            updated_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, sku)
        )
        """
    )
    op.execute("CREATE INDEX products_category ON products (tenant_id, category, name)")
    op.execute(
        """
        CREATE TABLE handled_messages (
            tenant_id            text NOT NULL,
            provider_message_id  text NOT NULL,
            conversation         text NOT NULL,
            handled_at           timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT handled_messages_unique UNIQUE (tenant_id, provider_message_id)
        )
        """
    )
    op.execute("CREATE INDEX handled_messages_age ON handled_messages (handled_at)")
    op.execute(
        """
        CREATE TABLE contacts (
            tenant_id        text NOT NULL,
            customer_wa_id   text NOT NULL,
            name             text,
            marketing_opt_in boolean NOT NULL DEFAULT true,
            opted_out_at     timestamptz,
            first_seen_at    timestamptz NOT NULL DEFAULT now(),
            last_seen_at     timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, customer_wa_id)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE orders (
            order_id          text PRIMARY KEY,
            tenant_id         text NOT NULL,
            account_id        text NOT NULL,
            customer_wa_id    text NOT NULL,
            status            text NOT NULL CHECK (status IN
                ('draft', 'confirmed', 'processing', 'shipped', 'delivered', 'cancelled')),
            currency          char(3) NOT NULL,
            subtotal          numeric(18, 4) NOT NULL,
            tax               numeric(18, 4) NOT NULL,
            total             numeric(18, 4) NOT NULL,
            payment_reference text NOT NULL,
            payment_status    text NOT NULL DEFAULT 'unpaid'
                CHECK (payment_status IN ('unpaid', 'claimed', 'paid')),
            customer_payment_ref text,
            cancel_reason     text,
            source_message_id text NOT NULL,
            created_at        timestamptz NOT NULL DEFAULT now(),
            updated_at        timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT orders_payment_reference UNIQUE (tenant_id, payment_reference),
            CONSTRAINT orders_source UNIQUE (tenant_id, source_message_id)
        )
        """
    )
    op.execute("CREATE INDEX orders_customer ON orders (tenant_id, customer_wa_id, created_at)")
    op.execute(
        """
        CREATE TABLE order_lines (
            order_id    text NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
            line_no     integer NOT NULL,
            sku         text NOT NULL,
            name        text NOT NULL,
            unit_price  numeric(18, 4) NOT NULL,
            quantity    integer NOT NULL CHECK (quantity > 0),
            line_total  numeric(18, 4) NOT NULL,
            PRIMARY KEY (order_id, line_no)
        )
        """
    )


def downgrade() -> None:
    for table in ("order_lines", "orders", "contacts", "handled_messages", "products"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    op.execute("DROP TABLE IF EXISTS bot_settings")
