"""memory_version.imported_from

Revision ID: 0018
Revises: 0016
Create Date: 2026-12-02

A version written by an import (``POST /v1/cubes/{id}/import``, ``memsvc import``) keeps
the original's actor, change kind, policy, reason and time, and says where it was copied
from here (system, cube, memory id and version there). NULL: not imported.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0018"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("memory_version", sa.Column("imported_from", postgresql.JSONB()))


def downgrade() -> None:
    op.drop_column("memory_version", "imported_from")
