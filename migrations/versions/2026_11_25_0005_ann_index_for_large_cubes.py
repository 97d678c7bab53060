"""ann index only for large cubes

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25

The HNSW index held every memory, so every write paid an HNSW insert (more than half of
batch ingest's cost outside the model), although cubes below the exact-search threshold
(the common case) never use it. Now only memories flagged ``ann`` are in it: the memories
of cubes the service has promoted (``cube.ann_indexed``, set when a search finds the cube
above the threshold). A partial b-tree finds the not-yet-indexed tail of a promoted cube,
which search scores exactly, so nothing is ever missing from results.

Existing databases: no memory is flagged here; large cubes are scored exactly until their
first search queues the promotion job (``ann_index``), which flags them in batches.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "cube",
        sa.Column("ann_indexed", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column(
        "memory", sa.Column("ann", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.drop_index("ix_memory_embedding_hnsw", table_name="memory", postgresql_using="hnsw")
    op.create_index(
        "ix_memory_embedding_ann",
        "memory",
        ["embedding"],
        postgresql_using="hnsw",
        postgresql_ops={"embedding": "vector_cosine_ops"},
        postgresql_where=sa.text("ann"),
    )
    op.create_index(
        "ix_memory_cube_unindexed", "memory", ["cube_id"], postgresql_where=sa.text("NOT ann")
    )


def downgrade() -> None:
    op.drop_index("ix_memory_cube_unindexed", table_name="memory")
    op.drop_index("ix_memory_embedding_ann", table_name="memory", postgresql_using="hnsw")
    op.create_index(
        "ix_memory_embedding_hnsw",
        "memory",
        ["embedding"],
        postgresql_using="hnsw",
        postgresql_ops={"embedding": "vector_cosine_ops"},
    )
    op.drop_column("memory", "ann")
    op.drop_column("cube", "ann_indexed")
