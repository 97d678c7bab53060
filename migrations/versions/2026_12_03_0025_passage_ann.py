"""memory_passage.ann: passages of promoted cubes in an HNSW index of their own

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-03

Memories of two or more sentences now get a passage vector per sentence
(``memsvc.store.indexing.passages``), so a cube of real conversation holds a few passages
per memory, and scoring all of a large cube's passages exactly on every search would cost
more than the rest of the search. As for memories (0005, 0008, 0009), the index is partial:
the ``ann_index`` job flags the passages of a promoted cube's flagged memories, searches
read the flagged ones through HNSW and score the unflagged tail exactly (a partial b-tree
finds it). Existing passages start unflagged: the next ``ann_index`` pass of their cube
(asked for by the first search that meets them) flags them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "memory_passage",
        sa.Column("ann", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.execute(
        "CREATE INDEX ix_memory_passage_embedding_ann ON memory_passage "
        "USING hnsw ((embedding::halfvec(384)) halfvec_cosine_ops) "
        "WITH (m = 8, ef_construction = 64) WHERE ann"
    )
    op.create_index(
        "ix_memory_passage_cube_unindexed",
        "memory_passage",
        ["cube_id"],
        postgresql_where=sa.text("NOT ann"),
    )


def downgrade() -> None:
    op.drop_index("ix_memory_passage_cube_unindexed", table_name="memory_passage")
    op.execute("DROP INDEX IF EXISTS ix_memory_passage_embedding_ann")
    op.drop_column("memory_passage", "ann")
