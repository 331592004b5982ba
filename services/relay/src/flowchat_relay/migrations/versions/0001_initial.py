"""endpoints, events, deliveries, attempts, conversation_sequences

Revision ID: 0001
Revises:
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE endpoints (
            id                    text PRIMARY KEY,
            tenant_id             text NOT NULL,
            url                   text NOT NULL,
            description           text NOT NULL DEFAULT '',
            event_types           text[] NOT NULL,
            format                text NOT NULL,
            enabled               boolean NOT NULL DEFAULT true,
            disabled_reason       text,
            secret                text NOT NULL,
            previous_secret       text,
            previous_secret_until timestamptz,
            failing_since         timestamptz,
            created_at            timestamptz NOT NULL DEFAULT now(),
            updated_at            timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX endpoints_tenant ON endpoints (tenant_id, id)")
    # One row per event; the body is the FlowChat event with its sequence set.
    op.execute(
        """
        CREATE TABLE events (
            id          text PRIMARY KEY,
            type        text NOT NULL,
            tenant_id   text NOT NULL,
            account_id  text NOT NULL,
            body        jsonb NOT NULL,
            meta_body   jsonb,
            created_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    # One row per event x endpoint: pending until delivered or failed.
    op.execute(
        """
        CREATE TABLE deliveries (
            id              bigserial PRIMARY KEY,
            event_id        text NOT NULL REFERENCES events (id) ON DELETE CASCADE,
            endpoint_id     text NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
            status          text NOT NULL DEFAULT 'pending',
            attempts        integer NOT NULL DEFAULT 0,
            next_attempt_at timestamptz NOT NULL DEFAULT now(),
            window_start    timestamptz NOT NULL DEFAULT now(),
            created_at      timestamptz NOT NULL DEFAULT now(),
            finished_at     timestamptz,
            UNIQUE (event_id, endpoint_id)
        )
        """
    )
    op.execute(
        "CREATE INDEX deliveries_due ON deliveries (endpoint_id, next_attempt_at) "
        "WHERE status = 'pending'"
    )
    op.execute(
        "CREATE INDEX deliveries_failed ON deliveries (endpoint_id, created_at) "
        "WHERE status = 'failed'"
    )
    op.execute(
        """
        CREATE TABLE attempts (
            id           bigserial PRIMARY KEY,
            delivery_id  bigint NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
            endpoint_id  text NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
            event_id     text NOT NULL,
            event_type   text NOT NULL,
            attempt      integer NOT NULL,
            status_code  integer,
            error        text,
            latency_ms   integer NOT NULL,
            response     text NOT NULL DEFAULT '',
            outcome      text NOT NULL,
            at           timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX attempts_endpoint ON attempts (endpoint_id, id DESC)")
    op.execute(
        """
        CREATE TABLE conversation_sequences (
            tenant_id     text NOT NULL,
            account_id    text NOT NULL,
            conversation  text NOT NULL,
            sequence      bigint NOT NULL,
            PRIMARY KEY (tenant_id, account_id, conversation)
        )
        """
    )


def downgrade() -> None:
    for table in ("attempts", "deliveries", "events", "endpoints", "conversation_sequences"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
