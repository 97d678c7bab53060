"""memory_version.rebased_over

Revision ID: 0012
Revises: 0009
Create Date: 2026-11-26

An edit made against an older version is applied on top of the system's versions written
since (enrichment, evolution) when none of them changed a field it sets; its version row
records which versions it was rebased over (NULL: none). See ``memsvc.store.edits``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("memory_version", sa.Column("rebased_over", sa.ARRAY(sa.Integer())))


def downgrade() -> None:
    op.drop_column("memory_version", "rebased_over")
