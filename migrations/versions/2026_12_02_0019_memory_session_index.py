"""memory session index: a thread's latest turns, for the context a new turn is indexed with

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02

``memsvc.store.context`` reads the latest memories of a session on every write that names
one; without this index that is a scan of the cube's memories.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_memory_cube_session"
        " ON memory (cube_id, session_id, created_at) WHERE session_id IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_memory_cube_session")
