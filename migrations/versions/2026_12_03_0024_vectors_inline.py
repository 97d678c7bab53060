"""vectors stored inline: embedding columns with STORAGE PLAIN

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-03

pgvector's ``vector`` type has EXTERNAL storage. When a row is more than about 2 KB, the
toaster may move it out of line into the TOAST table. Real memories cross that easily:
the content, the index text and the tsvector of a 700-character message, plus the
1,544-byte vector. An exact search then fetches every vector from the TOAST table. At
10k LongMemEval messages, raw exact kNN took 19.9 ms. With the vectors inline (PLAIN)
it took 3.4 ms (bench/load.py --lme; synthetic short sentences never showed it). The
HNSW path also gains: it rescores its candidates with the full-precision vectors.

A vector is 1.5 KB, so a row still fits its page; the other wide columns (content,
index text, tsvector) are still compressed or moved out of line as before.

Changing the storage only applies to rows written afterwards. Vectors already out of
line are rewritten inline here. Postgres 17 and later can tell which ones those are
(``pg_column_toast_chunk_id``). On older servers, ``VACUUM FULL memory`` does the same
in a maintenance window.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("memory", "memory_passage")


def upgrade() -> None:
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN embedding SET STORAGE PLAIN")
    version = op.get_bind().exec_driver_sql("SHOW server_version_num").scalar()
    if version is not None and int(version) >= 170000:
        for table in TABLES:
            # A new datum (a text round trip is exact: pgvector prints the shortest
            # representation that reads back to the same float) is stored per the new
            # storage; an unchanged toasted one would keep its out-of-line pointer.
            op.execute(
                f"UPDATE {table} SET embedding = embedding::text::vector"
                " WHERE pg_column_toast_chunk_id(embedding) IS NOT NULL"
            )


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN embedding SET STORAGE EXTERNAL")
