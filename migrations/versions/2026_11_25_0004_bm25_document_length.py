"""bm25 document length

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Stored so BM25 reads an integer per memory instead of its whole tsvector.
    op.add_column(
        "memory",
        sa.Column(
            "tsv_len",
            sa.Integer(),
            sa.Computed(
                "length(to_tsvector('english'::regconfig, coalesce(index_text, '')))",
                persisted=True,
            ),
            nullable=False,
        ),
    )


def downgrade() -> None:
    op.drop_column("memory", "tsv_len")
