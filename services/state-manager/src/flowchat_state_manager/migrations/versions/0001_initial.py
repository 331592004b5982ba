"""messages, message_events, pending_statuses, outbox

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # One row per outbound message; id is FlowChat's message_id.
    op.execute(
        """
        CREATE TABLE messages (
            id                  text PRIMARY KEY,
            tenant_id           text NOT NULL,
            account_id          text NOT NULL,
            idempotency_key     text,
            recipient           text,
            message_type        text,
            category            text,
            campaign_id         text,
            correlation_id      text,
            provider            text NOT NULL,
            provider_message_id text,
            status              text NOT NULL,
            status_rank         smallint NOT NULL,
            error_code          integer,
            error_title         text,
            error_details       text,
            pricing_category    text,
            created_at          timestamptz NOT NULL DEFAULT now(),
            updated_at          timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT messages_provider_message_id_key UNIQUE (provider, provider_message_id)
        )
        """
    )
    op.execute(
        "CREATE INDEX messages_tenant_created_idx ON messages (tenant_id, created_at DESC, id DESC)"
    )
    op.execute(
        "CREATE INDEX messages_tenant_recipient_idx ON messages (tenant_id, recipient, created_at DESC)"
    )
    op.execute(
        "CREATE INDEX messages_campaign_idx ON messages (tenant_id, campaign_id, created_at DESC) "
        "WHERE campaign_id IS NOT NULL"
    )
    op.execute("CREATE INDEX messages_idempotency_idx ON messages (tenant_id, idempotency_key)")
    op.execute("CREATE INDEX messages_provider_message_id_idx ON messages (provider_message_id)")
    op.execute("CREATE INDEX messages_created_idx ON messages (created_at)")

    # The history: every distinct status a message received, with provider timestamps.
    op.execute(
        """
        CREATE TABLE message_events (
            id                  bigserial PRIMARY KEY,
            message_id          text NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
            tenant_id           text NOT NULL,
            status              text NOT NULL,
            provider_timestamp  timestamptz NOT NULL,
            received_at         timestamptz NOT NULL DEFAULT now(),
            error_code          integer,
            error_title         text,
            error_details       text,
            pricing_category    text,
            event_id            text NOT NULL,
            CONSTRAINT message_events_event_id_key UNIQUE (event_id),
            CONSTRAINT message_events_message_status_key UNIQUE (message_id, status)
        )
        """
    )

    # Statuses whose WAMID is not mapped yet (the webhook beat the send result).
    op.execute(
        """
        CREATE TABLE pending_statuses (
            id                  bigserial PRIMARY KEY,
            provider            text NOT NULL,
            provider_message_id text NOT NULL,
            tenant_id           text NOT NULL,
            account_id          text NOT NULL,
            message_id          text,
            correlation_id      text,
            status              text NOT NULL,
            provider_timestamp  timestamptz NOT NULL,
            received_at         timestamptz NOT NULL DEFAULT now(),
            error_code          integer,
            error_title         text,
            error_details       text,
            pricing_category    text,
            event_id            text NOT NULL,
            CONSTRAINT pending_statuses_key UNIQUE (provider, provider_message_id, status)
        )
        """
    )
    op.execute("CREATE INDEX pending_statuses_received_idx ON pending_statuses (received_at)")

    # Transactional outbox of status-change events, relayed to flowchat.events.
    op.execute(
        """
        CREATE TABLE outbox (
            id          bigserial PRIMARY KEY,
            event_id    text NOT NULL,
            routing_key text NOT NULL,
            body        bytea NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE outbox")
    op.execute("DROP TABLE pending_statuses")
    op.execute("DROP TABLE message_events")
    op.execute("DROP TABLE messages")
