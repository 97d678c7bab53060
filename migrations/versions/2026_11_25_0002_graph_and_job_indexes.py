"""graph and job indexes: live links by cube, jobs by tenant and status

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Graph views and the path finder load a cube's live edges at once.
    op.create_index(
        "ix_link_cube_live",
        "link",
        ["cube_id"],
        unique=False,
        postgresql_where=sa.text("status = 'active'"),
    )
    # GET /v1/jobs counts by status per tenant; done jobs accumulate.
    op.create_index("ix_job_tenant_status", "job", ["tenant_id", "status"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_job_tenant_status", table_name="job")
    op.drop_index(
        "ix_link_cube_live", table_name="link", postgresql_where=sa.text("status = 'active'")
    )
