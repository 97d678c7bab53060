"""memory_summary: which member memory (and version) each summary version covers

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-02

Summaries are memories (``kind`` "summary", layer ``episodic`` for a conversation window,
``semantic`` for a cluster of related memories), written by the ``summarise`` job
(``memsvc.graph.summarise``). A row here says that version ``summary_version`` of summary
``summary_id`` covers version ``member_version`` of memory ``member_id`` (``position``: its
place in time order). Ids and numbers only: a hard erase of a member scrubs the summary
versions that cover it (``memsvc.store.erasure``). Tenant-isolated by row-level security
like every tenant table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CURRENT = "nullif(current_setting('memsvc.tenant_id', true), '')::uuid"


def upgrade() -> None:
    op.create_table(
        "memory_summary",
        sa.Column(
            "summary_id",
            UUID(as_uuid=True),
            sa.ForeignKey("memory.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("summary_version", sa.Integer(), primary_key=True),
        sa.Column(
            "member_id",
            UUID(as_uuid=True),
            sa.ForeignKey("memory.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("member_version", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
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
    )
    op.create_index("ix_memory_summary_member", "memory_summary", ["member_id"])
    op.create_index("ix_memory_summary_tenant_id", "memory_summary", ["tenant_id"])
    op.execute("ALTER TABLE memory_summary ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY tenant_isolation ON memory_summary "
        f"USING (tenant_id = {CURRENT}) WITH CHECK (tenant_id = {CURRENT})"
    )


def downgrade() -> None:
    op.drop_table("memory_summary")
