"""ann index with m=8

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26

The HNSW index of promoted cubes is rebuilt with ``m = 8`` (was pgvector's default 16),
keeping ``ef_construction = 64``. Every memory indexed costs an on-disk HNSW insert, and
on real text that insert, not the distance arithmetic, was the largest cost of writing to
a large cube. Measured at 100k MiniLM vectors of real text (halfvec, 3k inserts into
the built index, recall@10 against exact search):

- m=16: 1.9 ms per insert; recall 0.948 / 0.980 at ef_search 50 / 100.
- m=8: 0.9 ms per insert; recall 0.949 / 0.972 at ef_search 100 / 200.

Searches now use ef_search of at least 200 (``memsvc.store.ann.EF_SEARCH_MIN``, +1 ms).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _create(with_clause: str) -> None:
    op.execute("DROP INDEX IF EXISTS ix_memory_embedding_ann")
    op.execute(
        "CREATE INDEX ix_memory_embedding_ann ON memory "
        f"USING hnsw ((embedding::halfvec(384)) halfvec_cosine_ops) {with_clause}WHERE ann"
    )


def upgrade() -> None:
    _create("WITH (m = 8, ef_construction = 64) ")


def downgrade() -> None:
    _create("")
