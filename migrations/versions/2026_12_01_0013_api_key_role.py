"""api_key.role: operator, tenant admin, member

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01

An admin key could act on any tenant. Keys now have a role: ``operator`` (service-wide:
tenants and any tenant's keys), ``admin`` (keys and data of its own tenant) or ``member``.
Existing admin keys become tenant admins, except the key made on first start (tenant
``default``, by ``system:bootstrap``), which becomes the operator.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "api_key", sa.Column("role", sa.String(20), nullable=False, server_default="member")
    )
    op.execute("UPDATE api_key SET role = 'admin' WHERE admin")
    op.execute(
        """
        UPDATE api_key SET role = 'operator'
        WHERE id = (
            SELECT k.id FROM api_key k
            JOIN tenant t ON t.id = k.tenant_id
            JOIN audit_log a ON a.target_id = k.id::text AND a.action = 'key.create'
            WHERE t.name = 'default' AND k.admin AND a.actor = 'system:bootstrap'
            ORDER BY k.created_at LIMIT 1
        )
        """
    )
    op.create_check_constraint("role", "api_key", "role IN ('operator', 'admin', 'member')")
    op.drop_column("api_key", "admin")


def downgrade() -> None:
    op.add_column(
        "api_key",
        sa.Column("admin", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.execute("UPDATE api_key SET admin = role IN ('operator', 'admin')")
    op.drop_constraint("role", "api_key", type_="check")
    op.drop_column("api_key", "role")
