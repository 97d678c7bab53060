"""retrieval_trace: every step of an ``ask``; per-tenant caps on its budget

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02

A trace records what ``ask`` did (probes, what each found, gate decisions, LLM calls with
prompt name and version, tokens, timing) for ``GET /v1/traces/{id}`` and the admin view, until
``expires_at``. ``memory_ids`` holds every memory the trace names, so a hard erase of a memory
deletes the traces that mention it. Tenant-isolated by row-level security like every tenant
table. ``tenant_limit`` gains the tenant's caps on an ask's budget (NULL: the server's).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CURRENT = "nullif(current_setting('memsvc.tenant_id', true), '')::uuid"
CAPS = ("ask_max_cycles", "ask_max_llm_calls", "ask_max_tokens", "ask_deadline_ms")


def upgrade() -> None:
    op.create_table(
        "retrieval_trace",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column(
            "tenant_id",
            UUID(as_uuid=True),
            sa.ForeignKey("tenant.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "cube_id",
            UUID(as_uuid=True),
            sa.ForeignKey("cube.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("mode", sa.String(20), nullable=False),
        sa.Column("request", JSONB(), nullable=False),
        sa.Column("steps", JSONB(), nullable=False),
        sa.Column("response", JSONB(), nullable=False),
        sa.Column("memory_ids", ARRAY(UUID(as_uuid=True)), nullable=False),
        sa.Column("llm_calls", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("took_ms", sa.Float(), nullable=False),
        sa.Column("stopped", sa.String(20)),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_retrieval_trace_tenant_id", "retrieval_trace", ["tenant_id"])
    op.create_index("ix_retrieval_trace_cube_created", "retrieval_trace", ["cube_id", "created_at"])
    op.create_index("ix_retrieval_trace_expires_at", "retrieval_trace", ["expires_at"])
    op.create_index(
        "ix_retrieval_trace_memory_ids",
        "retrieval_trace",
        ["memory_ids"],
        postgresql_using="gin",
    )
    op.execute("ALTER TABLE retrieval_trace ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY tenant_isolation ON retrieval_trace "
        f"USING (tenant_id = {CURRENT}) WITH CHECK (tenant_id = {CURRENT})"
    )
    for cap in CAPS:
        op.add_column("tenant_limit", sa.Column(cap, sa.Integer()))


def downgrade() -> None:
    for cap in CAPS:
        op.drop_column("tenant_limit", cap)
    op.drop_table("retrieval_trace")
