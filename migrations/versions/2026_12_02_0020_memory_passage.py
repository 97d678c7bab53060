"""memory_passage: later stretches of long memories, embedded on their own

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02

The embedder reads the first ~256 word pieces of a text; a long memory's later passages get
their own vectors here and the vector channel scores a memory by its best one
(``memsvc.store.passages``). Tenant-isolated by row-level security like every tenant table.
Existing long memories get passages when their content is next edited.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects.postgresql import UUID

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CURRENT = "nullif(current_setting('memsvc.tenant_id', true), '')::uuid"


def upgrade() -> None:
    op.create_table(
        "memory_passage",
        sa.Column(
            "memory_id",
            UUID(as_uuid=True),
            sa.ForeignKey("memory.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("idx", sa.Integer(), primary_key=True),
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
        sa.Column("embedding", Vector(384), nullable=False),
    )
    op.create_index("ix_memory_passage_cube", "memory_passage", ["cube_id"])
    op.create_index("ix_memory_passage_tenant_id", "memory_passage", ["tenant_id"])
    op.execute("ALTER TABLE memory_passage ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY tenant_isolation ON memory_passage "
        f"USING (tenant_id = {CURRENT}) WITH CHECK (tenant_id = {CURRENT})"
    )


def downgrade() -> None:
    op.drop_table("memory_passage")
