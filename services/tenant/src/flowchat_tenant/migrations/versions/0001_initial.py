"""tenants, accounts (encrypted secrets, health), api_keys

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
        CREATE TABLE tenants (
            id             text PRIMARY KEY CHECK (id ~ '^tnt_[0-9a-f]+$'),
            name           text NOT NULL,
            business_name  text NOT NULL,
            status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
            timezone       text NOT NULL DEFAULT 'UTC',
            locale         text NOT NULL DEFAULT 'en',
            currency       char(3) NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
            tax_rate       numeric(6, 5) NOT NULL DEFAULT 0 CHECK (tax_rate >= 0 AND tax_rate <= 1),
            created_at     timestamptz NOT NULL DEFAULT now(),
            updated_at     timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE accounts (
            id                      text PRIMARY KEY CHECK (id ~ '^acc_[0-9a-f]+$'),
            tenant_id               text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
            provider                text NOT NULL CHECK (provider IN ('meta', 'twilio')),
            status                  text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
            phone_number_id         text UNIQUE,
            waba_id                 text,
            display_phone_number    text,
            app_id                  text,
            app_secret_enc          bytea,
            access_token_enc        bytea,
            verify_token_enc        bytea,
            verify_token_hash       text,
            twilio_account_sid      text,
            twilio_auth_token_enc   bytea,
            twilio_number           text UNIQUE,
            tier                    text NOT NULL DEFAULT 'standard',
            throughput_mps          integer NOT NULL DEFAULT 80 CHECK (throughput_mps > 0),
            throughput_pinned       boolean NOT NULL DEFAULT false,
            verified_name           text,
            quality_rating          text,
            throughput_level        text,
            messaging_limit_tier    text,
            health_checked_at       timestamptz,
            health_error            text,
            version                 integer NOT NULL DEFAULT 1,
            created_at              timestamptz NOT NULL DEFAULT now(),
            updated_at              timestamptz NOT NULL DEFAULT now(),
            CHECK (provider <> 'meta' OR (phone_number_id IS NOT NULL AND access_token_enc IS NOT NULL)),
            CHECK (provider <> 'twilio' OR (twilio_number IS NOT NULL AND twilio_auth_token_enc IS NOT NULL))
        )
        """
    )
    op.execute("CREATE INDEX accounts_tenant_idx ON accounts (tenant_id, created_at)")
    op.execute("CREATE INDEX accounts_verify_token_hash_idx ON accounts (verify_token_hash)")
    op.execute(
        """
        CREATE TABLE api_keys (
            id            text PRIMARY KEY CHECK (id ~ '^key_[0-9a-f]+$'),
            tenant_id     text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
            name          text NOT NULL,
            scopes        text[] NOT NULL CHECK (scopes <@ ARRAY['send', 'read', 'admin']::text[]),
            key_hash      text NOT NULL,
            created_at    timestamptz NOT NULL DEFAULT now(),
            last_used_at  timestamptz,
            revoked_at    timestamptz
        )
        """
    )
    op.execute("CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, created_at)")


def downgrade() -> None:
    op.execute("DROP TABLE api_keys")
    op.execute("DROP TABLE accounts")
    op.execute("DROP TABLE tenants")
