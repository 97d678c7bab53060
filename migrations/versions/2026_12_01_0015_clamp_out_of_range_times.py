"""Clamp stored times outside what Python and Postgres both represent

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01

Before requests checked their dates (``memsvc.schemas.common.Timestamp``), a time such as
``0001-01-01T00:00:00+14:00`` (year 0 in UTC) or ``9999-12-31T23:00:00-14:00`` (year 10000)
was stored, and every read of its memory, its cube's listings and searches, and the admin
pages then failed. This moves such values to the nearest bound the API accepts
(0001-01-02 .. 9999-12-30 UTC), so the memory reads again and can be corrected or deleted.
Data only; nothing to undo.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOW = "0001-01-02 00:00:00+00"
HIGH = "9999-12-30 00:00:00+00"
COLUMNS = {
    "memory": ("valid_from", "valid_to", "occurred_at"),
    "memory_version": ("valid_from", "valid_to"),
    "source": ("occurred_at",),
}


def upgrade() -> None:
    for table, columns in COLUMNS.items():
        for col in columns:
            op.execute(
                f"UPDATE {table} SET {col} = CASE WHEN {col} < '{LOW}'::timestamptz "
                f"THEN '{LOW}'::timestamptz ELSE '{HIGH}'::timestamptz END "
                f"WHERE {col} < '{LOW}'::timestamptz OR {col} > '{HIGH}'::timestamptz"
            )


def downgrade() -> None:
    pass
