"""llm_usage: LLM calls and tokens per tenant and clock hour (the LLM budget)

Revision ID: 0016
Revises: 0013
Create Date: 2026-12-01

Checked before every LLM call (``memsvc.store.llm_usage``): over
``llm.budget_calls_per_hour`` or ``llm.budget_tokens_per_hour`` the call is not made and
enrichment uses its heuristic result.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "llm_usage",
        sa.Column(
            "tenant_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey("tenant.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("tokens", sa.BigInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("tenant_id", "hour"),
    )


def downgrade() -> None:
    op.drop_table("llm_usage")
