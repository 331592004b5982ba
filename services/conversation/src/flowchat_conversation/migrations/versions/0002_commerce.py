"""Commerce: invoices, payments, order status history, hand-offs, discounts, timeouts.

Revision ID: 0002_commerce
Revises: 0001
Create Date: 2025-01-02
"""

from alembic import op

revision = "0002_commerce"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE bot_settings
            ADD COLUMN payment_timeout_hours integer NOT NULL DEFAULT 48
                CHECK (payment_timeout_hours > 0),
            ADD COLUMN discount_rate numeric(7, 6) NOT NULL DEFAULT 0
                CHECK (discount_rate >= 0 AND discount_rate < 1),
            ADD COLUMN discount_min_subtotal numeric(18, 4)
        """
    )
    op.execute(
        """
        ALTER TABLE orders
            ADD COLUMN discount numeric(18, 4) NOT NULL DEFAULT 0,
            ADD COLUMN paid_at timestamptz
        """
    )
    op.execute("CREATE INDEX orders_tenant_status ON orders (tenant_id, status, created_at)")
    op.execute(
        """
        CREATE TABLE invoices (
            invoice_id   text PRIMARY KEY,
            tenant_id    text NOT NULL,
            order_id     text NOT NULL UNIQUE REFERENCES orders (order_id) ON DELETE CASCADE,
            number       text NOT NULL,
            status       text NOT NULL DEFAULT 'unpaid'
                CHECK (status IN ('unpaid', 'paid', 'void')),
            currency     char(3) NOT NULL,
            subtotal     numeric(18, 4) NOT NULL,
            discount     numeric(18, 4) NOT NULL DEFAULT 0,
            tax_rate     numeric(7, 6) NOT NULL,
            tax          numeric(18, 4) NOT NULL,
            total        numeric(18, 4) NOT NULL,
            amount_paid  numeric(18, 4) NOT NULL DEFAULT 0,
            issued_at    timestamptz NOT NULL DEFAULT now(),
            due_at       timestamptz NOT NULL,
            paid_at      timestamptz
        )
        """
    )
    op.execute("CREATE INDEX invoices_due ON invoices (tenant_id, status, due_at)")
    op.execute(
        """
        CREATE TABLE payments (
            tenant_id    text NOT NULL,
            reference    text NOT NULL,
            order_id     text NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
            amount       numeric(18, 4) NOT NULL CHECK (amount > 0),
            currency     char(3) NOT NULL,
            received_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, reference)
        )
        """
    )
    op.execute("CREATE INDEX payments_order ON payments (order_id)")
    op.execute(
        """
        CREATE TABLE order_events (
            event_id     bigserial PRIMARY KEY,
            tenant_id    text NOT NULL,
            order_id     text NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
            from_status  text,
            to_status    text NOT NULL,
            reason       text,
            notification text NOT NULL
                CHECK (notification IN ('sent', 'needs_template', 'none')),
            at           timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX order_events_order ON order_events (order_id, event_id)")
    op.execute(
        """
        CREATE TABLE handoffs (
            tenant_id      text NOT NULL,
            account_id     text NOT NULL,
            customer_wa_id text NOT NULL,
            started_at     timestamptz NOT NULL DEFAULT now(),
            released_at    timestamptz,
            PRIMARY KEY (tenant_id, account_id, customer_wa_id)
        )
        """
    )
    op.execute(
        "CREATE INDEX handoffs_open ON handoffs (tenant_id, customer_wa_id) "
        "WHERE released_at IS NULL"
    )


def downgrade() -> None:
    for table in ("handoffs", "order_events", "payments", "invoices"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    op.execute("DROP INDEX IF EXISTS orders_tenant_status")
    op.execute("ALTER TABLE orders DROP COLUMN IF EXISTS discount, DROP COLUMN IF EXISTS paid_at")
    op.execute(
        "ALTER TABLE bot_settings DROP COLUMN IF EXISTS payment_timeout_hours, "
        "DROP COLUMN IF EXISTS discount_rate, DROP COLUMN IF EXISTS discount_min_subtotal"
    )
