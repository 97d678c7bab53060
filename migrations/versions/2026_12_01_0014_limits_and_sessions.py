"""per-tenant limits, daily write usage, revoked admin sessions

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01

``tenant_limit`` holds a tenant's overrides of the request rate and burst and its daily
write quota (NULL: the server's default). ``tenant_write_usage`` counts memories created
per tenant and UTC day. ``revoked_session`` lists signed-out admin sessions (by a hash of
their id) until their cookie would have expired anyway.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CURRENT = "nullif(current_setting('memsvc.tenant_id', true), '')::uuid"
TENANT_TABLES = ("tenant_limit", "tenant_write_usage")


def upgrade() -> None:
    op.create_table(
        "tenant_limit",
        sa.Column(
            "tenant_id",
            UUID(as_uuid=True),
            sa.ForeignKey("tenant.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("rate_per_s", sa.Float(), nullable=True),
        sa.Column("rate_burst", sa.Integer(), nullable=True),
        sa.Column("daily_write_quota", sa.BigInteger(), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )
    op.create_table(
        "tenant_write_usage",
        sa.Column(
            "tenant_id",
            UUID(as_uuid=True),
            sa.ForeignKey("tenant.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("writes", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.create_table(
        "revoked_session",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_revoked_session_expires_at", "revoked_session", ["expires_at"])
    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} "
            f"USING (tenant_id = {CURRENT}) WITH CHECK (tenant_id = {CURRENT})"
        )


def downgrade() -> None:
    op.drop_index("ix_revoked_session_expires_at", table_name="revoked_session")
    op.drop_table("revoked_session")
    op.drop_table("tenant_write_usage")
    op.drop_table("tenant_limit")
