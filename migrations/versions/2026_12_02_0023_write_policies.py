"""write policies: write_decision, write_policy (trained versions), feedback; cube.write_policy

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-02

``POST /v1/cubes/{id}/ingest`` stores each message as a source and lets a write policy
decide what memory becomes of it (``memsvc.policy.ingest``). ``write_decision`` records every
decision (policy and version, features, operation, layer, the memory version it produced,
target, reason, score); ``write_policy`` holds a tenant's trained policy versions as data
(JSON, never pickle) with their metrics, one active per name; ``feedback`` holds the reward
signals agents report on memories (used, wrong). ``cube.write_policy`` is a cube's default
policy. Tenant-isolated by row-level security like every tenant table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CURRENT = "nullif(current_setting('memsvc.tenant_id', true), '')::uuid"


def _tenant() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "tenant_id",
        UUID(as_uuid=True),
        sa.ForeignKey("tenant.id", ondelete="CASCADE"),
        nullable=False,
    )


def _cube() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "cube_id", UUID(as_uuid=True), sa.ForeignKey("cube.id", ondelete="CASCADE"), nullable=False
    )


def _isolate(table: str) -> None:
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {table} "
        f"USING (tenant_id = {CURRENT}) WITH CHECK (tenant_id = {CURRENT})"
    )


def upgrade() -> None:
    op.add_column("cube", sa.Column("write_policy", sa.String(100)))
    op.create_table(
        "write_decision",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        _tenant(),
        _cube(),
        sa.Column("ingest_id", UUID(as_uuid=True), nullable=False),
        sa.Column("message_index", sa.Integer(), nullable=False),
        sa.Column(
            "source_id",
            UUID(as_uuid=True),
            sa.ForeignKey("source.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("policy", sa.String(100), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("operation", sa.String(10), nullable=False),
        sa.Column("layer", sa.String(20)),
        sa.Column("memory_id", UUID(as_uuid=True)),
        sa.Column("memory_version", sa.Integer()),
        sa.Column("target_id", UUID(as_uuid=True)),
        sa.Column("reason", sa.Text(), nullable=False, server_default=""),
        sa.Column("score", sa.Float()),
        sa.Column("features", JSONB(), nullable=False, server_default="{}"),
        sa.Column("reward", sa.Float()),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "operation IN ('insert', 'update', 'merge', 'delete', 'skip')", name="operation"
        ),
    )
    op.create_index("ix_write_decision_tenant_id", "write_decision", ["tenant_id"])
    op.create_index("ix_write_decision_cube_id", "write_decision", ["cube_id", "id"])
    op.create_index("ix_write_decision_memory", "write_decision", ["memory_id", "memory_version"])
    op.create_index("ix_write_decision_source_id", "write_decision", ["source_id"])
    _isolate("write_decision")
    op.create_table(
        "write_policy",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        _tenant(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("model", JSONB(), nullable=False),
        sa.Column("metrics", JSONB(), nullable=False, server_default="{}"),
        sa.Column("training", JSONB(), nullable=False, server_default="{}"),
        sa.Column("created_by", sa.String(300), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("activated_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("tenant_id", "name", "version", name="uq_write_policy_version"),
    )
    op.create_index(
        "uq_write_policy_active",
        "write_policy",
        ["tenant_id", "name"],
        unique=True,
        postgresql_where=sa.text("active"),
    )
    _isolate("write_policy")
    op.create_table(
        "feedback",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        _tenant(),
        _cube(),
        sa.Column(
            "memory_id",
            UUID(as_uuid=True),
            sa.ForeignKey("memory.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("trace_id", UUID(as_uuid=True)),
        sa.Column("signal", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(300), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )
    op.create_index("ix_feedback_tenant_id", "feedback", ["tenant_id"])
    op.create_index("ix_feedback_memory_id", "feedback", ["memory_id"])
    _isolate("feedback")


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("write_policy")
    op.drop_table("write_decision")
    op.drop_column("cube", "write_policy")
