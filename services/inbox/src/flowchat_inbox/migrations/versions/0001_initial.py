"""threads, aliases, messages, statuses, conversations

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
    # One thread per (tenant, number, customer); customer_key is the identity's key.
    op.execute(
        """
        CREATE TABLE threads (
            id               bigserial PRIMARY KEY,
            tenant_id        text NOT NULL,
            account_id       text NOT NULL,
            customer_key     text NOT NULL,
            wa_id            text,
            user_id          text,
            customer_name    text,
            last_message_at  timestamptz NOT NULL,
            last_inbound_at  timestamptz,
            last_preview     text,
            message_count    integer NOT NULL DEFAULT 0,
            created_at       timestamptz NOT NULL DEFAULT now(),
            UNIQUE (tenant_id, account_id, customer_key)
        )
        """
    )
    op.execute("CREATE INDEX threads_recent ON threads (tenant_id, last_message_at DESC, id DESC)")
    # Every id of a customer (phone digits, BSUID) → the key its threads are under.
    op.execute(
        """
        CREATE TABLE aliases (
            tenant_id    text NOT NULL,
            alias        text NOT NULL,
            customer_key text NOT NULL,
            PRIMARY KEY (tenant_id, alias)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE messages (
            id                  bigserial PRIMARY KEY,
            tenant_id           text NOT NULL,
            thread_id           bigint NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
            dedupe_key          text NOT NULL,
            direction           text NOT NULL,
            author              text NOT NULL,
            agent_id            text,
            type                text NOT NULL,
            body                text,
            content             jsonb NOT NULL,
            message_id          text,
            provider_message_id text,
            occurred_at         timestamptz NOT NULL,
            recorded_at         timestamptz NOT NULL DEFAULT now(),
            search              tsvector GENERATED ALWAYS AS
                                (to_tsvector('simple', coalesce(body, ''))) STORED,
            UNIQUE (tenant_id, dedupe_key)
        )
        """
    )
    op.execute("CREATE INDEX messages_thread ON messages (thread_id, occurred_at DESC, id DESC)")
    op.execute("CREATE INDEX messages_search ON messages USING gin (search)")
    op.execute(
        "CREATE INDEX messages_message_id ON messages (tenant_id, message_id) "
        "WHERE message_id IS NOT NULL"
    )
    # Latest status of an outbound message (may arrive before its command: joined on read).
    op.execute(
        """
        CREATE TABLE statuses (
            tenant_id   text NOT NULL,
            message_id  text NOT NULL,
            status      text NOT NULL,
            rank        smallint NOT NULL,
            error_code  integer,
            updated_at  timestamptz NOT NULL,
            PRIMARY KEY (tenant_id, message_id)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE conversations (
            id                bigserial PRIMARY KEY,
            tenant_id         text NOT NULL,
            account_id        text NOT NULL,
            thread_id         bigint NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
            status            text NOT NULL CHECK (status IN ('waiting', 'assigned', 'resolved')),
            assignee          text,
            reason            text,
            bot_state         text,
            source_event_id   text NOT NULL,
            opened_at         timestamptz NOT NULL,
            claimed_at        timestamptz,
            first_response_at timestamptz,
            resolved_at       timestamptz,
            resolved_by       text,
            UNIQUE (tenant_id, source_event_id)
        )
        """
    )
    # At most one open conversation per thread.
    op.execute(
        "CREATE UNIQUE INDEX conversations_open ON conversations (thread_id) "
        "WHERE status <> 'resolved'"
    )
    op.execute("CREATE INDEX conversations_list ON conversations (tenant_id, status, opened_at)")


def downgrade() -> None:
    for table in ("conversations", "statuses", "messages", "aliases", "threads"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
