"""Customers' privacy: erasure requests and their reports, and suppression entries.

``suppressions (tenant_id, digest)``: an erased customer's ids as keyed digests
(HMAC-SHA256 under ``FLOWCHAT_PRIVACY_KEY``, ``flowchat_platform.privacy.BlindIndex``),
never the ids themselves; campaigns skip a recipient whose id has one.
``erasures`` / ``erasure_reports``: the requests and what each service did (no
customer data: the request id is a digest too).

Revision ID: 0007_privacy
Revises: 0006_order_lifecycle
Create Date: 2026-12-07
"""

from alembic import op

revision = "0007_privacy"
down_revision = "0006_order_lifecycle"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE suppressions (
            tenant_id   text NOT NULL,
            digest      text NOT NULL,
            reason      text NOT NULL CHECK (reason IN ('opted_out', 'erased')),
            request_id  text,
            created_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, digest)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE erasures (
            request_id    text PRIMARY KEY,
            tenant_id     text NOT NULL,
            requested_by  text,
            services      text[] NOT NULL,
            requested_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX erasures_tenant ON erasures (tenant_id, requested_at)")
    op.execute(
        """
        CREATE TABLE erasure_reports (
            request_id    text NOT NULL REFERENCES erasures (request_id) ON DELETE CASCADE,
            tenant_id     text NOT NULL,
            service       text NOT NULL,
            actions       jsonb NOT NULL,
            completed_at  timestamptz NOT NULL,
            PRIMARY KEY (request_id, service)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS erasure_reports")
    op.execute("DROP TABLE IF EXISTS erasures")
    op.execute("DROP TABLE IF EXISTS suppressions")
