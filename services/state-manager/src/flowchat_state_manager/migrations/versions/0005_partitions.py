"""messages and message_events partitioned by week (range on the message's created_at)

Retention drops a whole week (one partition of each table) instead of deleting rows.
A message's history lives in the partition of its message: ``message_events`` gets
``message_created_at`` (the message's ``created_at``), its partition key. No foreign
key any more: detaching a partition of a table a foreign key references checks the
whole referencing table (a scan of every history row, under an ACCESS EXCLUSIVE lock
on ``messages``: 27 s at 10 M rows, bench/state_partitions.py), so retention drops a
week's history and messages in one transaction, and the row purge of the DEFAULT
partition deletes a message's history with it.

Keys must include the partition key, so:

- ``messages``: primary key ``(id, created_at)``; an id is unique because every write
  of a message runs under the transaction-scoped advisory lock on its id and looks it up
  first (``repository.Tx.upsert_message``); a provider message id (WAMID) is claimed by
  one message because every mapping runs under the advisory lock on the WAMID and
  checks first (``Tx.claim_provider_id``). The old UNIQUE (provider,
  provider_message_id) is a plain index.
- ``message_events``: UNIQUE (message_id, message_created_at, status) and UNIQUE
  (event_id, message_created_at): the same guarantees as before (one row per status of
  a message, an event recorded once), since a message's events are all in one partition.

Partitions: one per ISO week, Monday 00:00 UTC to the next (``messages_pYYYYMMDD`` /
``message_events_pYYYYMMDD``, the Monday), created ahead by
``create_message_partitions(first, last)`` (every week that has a day in that range:
this migration from the oldest record, at most 400 days back, to 7 days ahead; the
service at every retention pass). Weeks, not days: a lookup by id or WAMID (no partition
key) probes every partition's index, and a 90-day retention keeps about 14 weeks
against 97 days (bench/state_partitions.py). A DEFAULT partition of each takes rows
outside every week created (older records, a clock far ahead); retention deletes its
old rows in batches.

The conversion copies the tables (an ACCESS EXCLUSIVE lock for the copy: run it in a
maintenance window on a large database; docs/scaling.md has the figures).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MESSAGE_COLUMNS = (
    "id, tenant_id, account_id, idempotency_key, recipient, message_type, category, "
    "campaign_id, correlation_id, provider, provider_message_id, status, status_rank, "
    "error_code, error_title, error_details, pricing_category, created_at, updated_at, "
    "recipient_alias"
)
_EVENT_COLUMNS = (
    "id, message_id, tenant_id, status, provider_timestamp, received_at, error_code, "
    "error_title, error_details, pricing_category, event_id, sequence"
)

_MESSAGES_BODY = """
    id                  text NOT NULL,
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
    recipient_alias     text
"""

_EVENTS_BODY = """
    id                  bigint NOT NULL DEFAULT nextval('message_events_id_seq'),
    message_id          text NOT NULL,
    tenant_id           text NOT NULL,
    status              text NOT NULL,
    provider_timestamp  timestamptz NOT NULL,
    received_at         timestamptz NOT NULL DEFAULT now(),
    error_code          integer,
    error_title         text,
    error_details       text,
    pricing_category    text,
    event_id            text NOT NULL,
    sequence            bigint NOT NULL DEFAULT nextval('status_learned_seq')
"""

#: Creates the week partitions of both tables (Monday to Monday, UTC) covering
#: ``first_day`` to ``last_day`` that do not exist yet; the number created. One caller
#: at a time (advisory lock).
CREATE_FUNCTION = """
CREATE FUNCTION create_message_partitions(first_day date, last_day date) RETURNS integer
LANGUAGE plpgsql AS $fn$
DECLARE
    d date;
    created integer := 0;
    suffix text;
    lo text;
    hi text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('flowchat_state_manager.partitions'));
    FOR d IN SELECT generate_series(date_trunc('week', first_day), last_day,
                                    interval '7 days')::date LOOP
        suffix := to_char(d, 'YYYYMMDD');
        IF to_regclass('messages_p' || suffix) IS NULL THEN
            lo := to_char(d, 'YYYY-MM-DD') || ' 00:00:00+00';
            hi := to_char(d + 7, 'YYYY-MM-DD') || ' 00:00:00+00';
            EXECUTE format('CREATE TABLE %I PARTITION OF messages FOR VALUES FROM (%L) TO (%L)',
                           'messages_p' || suffix, lo, hi);
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF message_events FOR VALUES FROM (%L) TO (%L)',
                'message_events_p' || suffix, lo, hi);
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END
$fn$
"""


def upgrade() -> None:
    op.execute("ALTER SEQUENCE message_events_id_seq OWNED BY NONE")
    op.execute("ALTER TABLE message_events RENAME TO message_events_unpartitioned")
    op.execute("ALTER TABLE messages RENAME TO messages_unpartitioned")
    op.execute(f"CREATE TABLE messages ({_MESSAGES_BODY}) PARTITION BY RANGE (created_at)")
    op.execute("CREATE TABLE messages_default PARTITION OF messages DEFAULT")
    op.execute(
        f"CREATE TABLE message_events ({_EVENTS_BODY}, message_created_at timestamptz NOT NULL) "
        "PARTITION BY RANGE (message_created_at)"
    )
    op.execute("CREATE TABLE message_events_default PARTITION OF message_events DEFAULT")
    op.execute(CREATE_FUNCTION)
    op.execute(
        """
        SELECT create_message_partitions(
            GREATEST(COALESCE((SELECT min(created_at) FROM messages_unpartitioned), now()),
                     now() - interval '400 days')::date,
            (now() + interval '7 days')::date)
        """
    )
    op.execute(
        f"INSERT INTO messages ({_MESSAGE_COLUMNS}) "  # noqa: S608
        f"SELECT {_MESSAGE_COLUMNS} FROM messages_unpartitioned"
    )
    op.execute(
        f"INSERT INTO message_events ({_EVENT_COLUMNS}, message_created_at) "  # noqa: S608
        f"SELECT {', '.join('e.' + c.strip() for c in _EVENT_COLUMNS.split(','))}, m.created_at "
        "FROM message_events_unpartitioned e JOIN messages_unpartitioned m ON m.id = e.message_id"
    )
    op.execute("DROP TABLE message_events_unpartitioned")
    op.execute("DROP TABLE messages_unpartitioned")
    op.execute("ALTER SEQUENCE message_events_id_seq OWNED BY message_events.id")
    _message_indexes()
    op.execute("CREATE INDEX messages_default_created_idx ON messages_default (created_at)")
    op.execute("ALTER TABLE message_events ADD PRIMARY KEY (id, message_created_at)")
    op.execute(
        "ALTER TABLE message_events ADD CONSTRAINT message_events_event_id_key "
        "UNIQUE (event_id, message_created_at)"
    )
    op.execute(
        "ALTER TABLE message_events ADD CONSTRAINT message_events_message_status_key "
        "UNIQUE (message_id, message_created_at, status)"
    )
    op.execute(
        "CREATE INDEX message_events_message_sequence_idx ON message_events (message_id, sequence)"
    )


def _message_indexes() -> None:
    op.execute("ALTER TABLE messages ADD PRIMARY KEY (id, created_at)")
    op.execute(
        "CREATE INDEX messages_tenant_created_idx ON messages (tenant_id, created_at DESC, id DESC)"
    )
    op.execute(
        "CREATE INDEX messages_tenant_recipient_idx ON messages (tenant_id, recipient, created_at DESC)"
    )
    op.execute(
        "CREATE INDEX messages_tenant_recipient_alias_idx "
        "ON messages (tenant_id, recipient_alias, created_at DESC) "
        "WHERE recipient_alias IS NOT NULL"
    )
    op.execute(
        "CREATE INDEX messages_campaign_idx ON messages (tenant_id, campaign_id, created_at DESC) "
        "WHERE campaign_id IS NOT NULL"
    )
    op.execute("CREATE INDEX messages_idempotency_idx ON messages (tenant_id, idempotency_key)")
    op.execute("CREATE INDEX messages_provider_message_id_idx ON messages (provider_message_id)")


def downgrade() -> None:
    op.execute("ALTER SEQUENCE message_events_id_seq OWNED BY NONE")
    op.execute("ALTER TABLE message_events RENAME TO message_events_partitioned")
    op.execute("ALTER TABLE messages RENAME TO messages_partitioned")
    op.execute(f"CREATE TABLE messages ({_MESSAGES_BODY})")
    op.execute(
        f"INSERT INTO messages ({_MESSAGE_COLUMNS}) "  # noqa: S608
        f"SELECT {_MESSAGE_COLUMNS} FROM messages_partitioned"
    )
    op.execute(f"CREATE TABLE message_events ({_EVENTS_BODY})")
    op.execute(
        f"INSERT INTO message_events ({_EVENT_COLUMNS}) "  # noqa: S608
        f"SELECT {_EVENT_COLUMNS} FROM message_events_partitioned"
    )
    op.execute("DROP TABLE message_events_partitioned")
    op.execute("DROP TABLE messages_partitioned")
    op.execute("DROP FUNCTION create_message_partitions(date, date)")
    op.execute("ALTER SEQUENCE message_events_id_seq OWNED BY message_events.id")
    op.execute("ALTER TABLE messages ADD PRIMARY KEY (id)")
    op.execute(
        "ALTER TABLE messages ADD CONSTRAINT messages_provider_message_id_key "
        "UNIQUE (provider, provider_message_id)"
    )
    for statement in (
        "CREATE INDEX messages_tenant_created_idx ON messages (tenant_id, created_at DESC, id DESC)",
        "CREATE INDEX messages_tenant_recipient_idx ON messages (tenant_id, recipient, created_at DESC)",
        "CREATE INDEX messages_tenant_recipient_alias_idx "
        "ON messages (tenant_id, recipient_alias, created_at DESC) WHERE recipient_alias IS NOT NULL",
        "CREATE INDEX messages_campaign_idx ON messages (tenant_id, campaign_id, created_at DESC) "
        "WHERE campaign_id IS NOT NULL",
        "CREATE INDEX messages_idempotency_idx ON messages (tenant_id, idempotency_key)",
        "CREATE INDEX messages_provider_message_id_idx ON messages (provider_message_id)",
        "CREATE INDEX messages_created_idx ON messages (created_at)",
        "ALTER TABLE message_events ADD PRIMARY KEY (id)",
        "ALTER TABLE message_events ADD CONSTRAINT message_events_event_id_key UNIQUE (event_id)",
        "ALTER TABLE message_events ADD CONSTRAINT message_events_message_status_key "
        "UNIQUE (message_id, status)",
        "CREATE INDEX message_events_message_sequence_idx ON message_events (message_id, sequence)",
        "ALTER TABLE message_events ADD CONSTRAINT message_events_message_id_fkey "
        "FOREIGN KEY (message_id) REFERENCES messages (id) ON DELETE CASCADE",
    ):
        op.execute(statement)
