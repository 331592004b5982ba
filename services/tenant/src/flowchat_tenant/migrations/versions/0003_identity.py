"""identity: users (operators and tenants' staff), invitations, sessions, login throttle, audit log

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06

Additive only (new tables), so it applies to a database already at 0002 with its rows.
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE users (
            id             text PRIMARY KEY CHECK (id ~ '^usr_[0-9a-f]+$'),
            -- NULL: an operator user (platform staff), who belongs to no tenant
            tenant_id      text REFERENCES tenants (id) ON DELETE CASCADE,
            email          text NOT NULL,
            role           text NOT NULL CHECK (role IN ('operator', 'owner', 'admin', 'agent', 'viewer')),
            status         text NOT NULL DEFAULT 'invited'
                           CHECK (status IN ('invited', 'active', 'disabled', 'deleted')),
            password_hash  text,
            name           text,
            display_name   text,
            avatar_url     text,
            language       text NOT NULL DEFAULT 'en',
            timezone       text NOT NULL DEFAULT 'UTC',
            notifications  jsonb NOT NULL DEFAULT '{}'::jsonb,
            -- every forced reset, disable or delete bumps it: older access tokens die
            token_version  integer NOT NULL DEFAULT 1,
            last_login_at  timestamptz,
            created_at     timestamptz NOT NULL DEFAULT now(),
            updated_at     timestamptz NOT NULL DEFAULT now(),
            CHECK ((role = 'operator') = (tenant_id IS NULL))
        )
        """
    )
    op.execute(
        "CREATE UNIQUE INDEX users_email_key ON users (lower(email)) WHERE status <> 'deleted'"
    )
    op.execute("CREATE INDEX users_tenant_idx ON users (tenant_id, id)")
    op.execute(
        """
        CREATE TABLE user_tokens (
            token_hash  text PRIMARY KEY,
            user_id     text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            kind        text NOT NULL CHECK (kind IN ('invitation', 'reset')),
            expires_at  timestamptz NOT NULL,
            used_at     timestamptz,
            created_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX user_tokens_user_idx ON user_tokens (user_id)")
    op.execute(
        """
        CREATE TABLE sessions (
            id            text PRIMARY KEY CHECK (id ~ '^ses_[0-9a-f]+$'),
            token_hash    text NOT NULL UNIQUE,
            user_id       text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            ip            text,
            user_agent    text,
            created_at    timestamptz NOT NULL DEFAULT now(),
            last_seen_at  timestamptz NOT NULL DEFAULT now(),
            expires_at    timestamptz NOT NULL,
            revoked_at    timestamptz
        )
        """
    )
    op.execute("CREATE INDEX sessions_user_idx ON sessions (user_id) WHERE revoked_at IS NULL")
    op.execute(
        """
        CREATE TABLE login_throttle (
            subject          text PRIMARY KEY,  -- 'user:<lower email>' or 'ip:<address>'
            failures         integer NOT NULL,
            last_failure_at  timestamptz NOT NULL,
            locked_until     timestamptz
        )
        """
    )
    op.execute(
        """
        CREATE TABLE audit_log (
            id          bigserial PRIMARY KEY,
            at          timestamptz NOT NULL DEFAULT now(),
            tenant_id   text,  -- no foreign key: the trail outlives what it names
            actor_type  text NOT NULL CHECK (actor_type IN ('operator_key', 'user', 'api_key', 'cli', 'service')),
            actor_id    text,
            action      text NOT NULL,
            target_type text NOT NULL,
            target_id   text,
            details     jsonb NOT NULL DEFAULT '{}'::jsonb,
            ip          text,
            user_agent  text
        )
        """
    )
    op.execute("CREATE INDEX audit_log_tenant_idx ON audit_log (tenant_id, id DESC)")


def downgrade() -> None:
    for table in ("audit_log", "login_throttle", "sessions", "user_tokens", "users"):
        op.execute(f"DROP TABLE {table}")
