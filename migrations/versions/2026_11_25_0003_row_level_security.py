"""row-level security: the second wall of tenant isolation

Every tenant-owned table gets a policy ``tenant_id = memsvc.tenant_id``. Request
transactions switch to the NOLOGIN role ``memsvc_tenant`` and set ``memsvc.tenant_id``,
so a query that forgot its tenant filter still sees only the caller's rows. The owner
(workers, migrations, bootstrap) is not subject to the policies. Where the database user
may not create roles, the migration only notes it and the service runs on the first wall.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLE = "memsvc_tenant"
TABLES = [
    "api_key",
    "cube",
    "memory",
    "memory_version",
    "source",
    "memory_source",
    "link",
    "job",
    "idempotency_record",
    "audit_log",
]
CURRENT = "nullif(current_setting('memsvc.tenant_id', true), '')::uuid"


def upgrade() -> None:
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}') THEN
                CREATE ROLE {ROLE} NOLOGIN;
            END IF;
            EXECUTE format('GRANT {ROLE} TO %I', current_user);
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'memsvc: cannot create role {ROLE}; row-level security is off';
        END $$;
        """
    )
    op.execute(
        f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}') THEN
                GRANT USAGE ON SCHEMA public TO {ROLE};
                GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {ROLE};
                GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {ROLE};
                ALTER DEFAULT PRIVILEGES IN SCHEMA public
                    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {ROLE};
                ALTER DEFAULT PRIVILEGES IN SCHEMA public
                    GRANT USAGE, SELECT ON SEQUENCES TO {ROLE};
            END IF;
        END $$;
        """
    )
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} "
            f"USING (tenant_id = {CURRENT}) WITH CHECK (tenant_id = {CURRENT})"
        )
    op.execute("ALTER TABLE tenant ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON tenant "
        f"USING (id = {CURRENT}) WITH CHECK (id = {CURRENT})"
    )


def downgrade() -> None:
    # The role is cluster-wide and may serve other databases: it is left in place.
    for table in [*TABLES, "tenant"]:
        op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
