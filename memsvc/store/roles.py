"""The database role the service connects as.

On the embedded server memsvc holds the superuser (``postgres``) and uses it only here, once
per start (:func:`prepare_app_role`): it makes the login role ``memsvc_app`` (no superuser,
create-db, create-role, replication or bypass-RLS rights; a statement timeout of its own),
creates what needs a superuser (the ``vector`` extension, the tenant role), and hands every
memsvc object in the database to ``memsvc_app`` — databases made by older versions had the
superuser own them. Migrations and every runtime connection then run as ``memsvc_app``. As
the tables' owner it is not subject to row-level security (key lookup across tenants, tenant
creation, the job worker); request transactions still switch to ``memsvc_tenant``.

This is a start-up step rather than a migration: migrations run as ``memsvc_app`` (or, with an
external ``MEMSVC_DATABASE_URL``, as the role given), which can neither make roles nor take
objects from the superuser. With an external database nothing here runs; the service uses the
role it is given and warns when that role is a superuser (:func:`is_superuser`).
"""

from __future__ import annotations

from sqlalchemy import Connection, create_engine, make_url, text

APP_ROLE = "memsvc_app"
TENANT_ROLE = "memsvc_tenant"
# Taken by migrate() too: a second process starting at once waits for the first.
MIGRATION_LOCK = 7286001

_ROLES = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
        CREATE ROLE {APP_ROLE} LOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{TENANT_ROLE}') THEN
        CREATE ROLE {TENANT_ROLE} NOLOGIN;
    END IF;
END $$
"""

# Hand memsvc's objects in schema public to the app role: tables, views and sequences that
# no column owns (owned ones follow their table), functions, and enum, domain and range
# types. Extension members (pgvector's types, operators, functions) stay with the superuser.
_HAND_OVER = f"""
DO $$
DECLARE
    obj record;
BEGIN
    FOR obj IN
        SELECT c.oid::regclass::text AS name,
               CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                    WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END AS kind
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public'
          AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
          AND c.relowner <> '{APP_ROLE}'::regrole
          AND NOT EXISTS (
              SELECT 1 FROM pg_depend d
              WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                AND d.deptype IN ('e', 'a', 'i'))
    LOOP
        EXECUTE format('ALTER %s %s OWNER TO {APP_ROLE}', obj.kind, obj.name);
    END LOOP;
    FOR obj IN
        SELECT p.oid::regprocedure::text AS name
        FROM pg_proc p
        JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public'
          AND p.prokind IN ('f', 'p')
          AND p.proowner <> '{APP_ROLE}'::regrole
          AND NOT EXISTS (
              SELECT 1 FROM pg_depend d
              WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
    LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO {APP_ROLE}', obj.name);
    END LOOP;
    FOR obj IN
        SELECT t.oid::regtype::text AS name
        FROM pg_type t
        JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname = 'public'
          AND t.typtype IN ('e', 'd', 'r')
          AND t.typowner <> '{APP_ROLE}'::regrole
          AND NOT EXISTS (
              SELECT 1 FROM pg_depend d
              WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
    LOOP
        EXECUTE format('ALTER TYPE %s OWNER TO {APP_ROLE}', obj.name);
    END LOOP;
END $$
"""


def _bootstrap(conn: Connection, *, statement_timeout_s: float) -> None:
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
    conn.execute(text(_ROLES))
    # Re-asserted on every start: an operator's ALTER ROLE cannot quietly widen it.
    conn.execute(
        text(
            f"ALTER ROLE {APP_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
            "NOREPLICATION NOBYPASSRLS"
        )
    )
    # Also set per connection (Database.connect); on the role it covers any session as it.
    timeout_ms = int(statement_timeout_s * 1000)
    conn.execute(text(f"ALTER ROLE {APP_ROLE} SET statement_timeout = {timeout_ms}"))
    conn.execute(text(f"GRANT {TENANT_ROLE} TO {APP_ROLE}"))
    conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
    conn.execute(text(f"GRANT USAGE, CREATE ON SCHEMA public TO {APP_ROLE}"))
    conn.execute(text(_HAND_OVER))
    # Migration 0003 gave the tenant role the tables its (then superuser) creator makes
    # later; tables are now made by the app role.
    for grant in (
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {TENANT_ROLE}",
        f"GRANT USAGE, SELECT ON SEQUENCES TO {TENANT_ROLE}",
    ):
        conn.execute(text(f"ALTER DEFAULT PRIVILEGES FOR ROLE {APP_ROLE} IN SCHEMA public {grant}"))


def prepare_app_role(superuser_url: str, *, statement_timeout_s: float) -> str:
    """Make the app role and hand it the database at ``superuser_url`` (one transaction,
    idempotent); returns the URL to connect as the app role instead."""
    engine = create_engine(superuser_url, hide_parameters=True)
    try:
        with engine.begin() as conn:
            _bootstrap(conn, statement_timeout_s=statement_timeout_s)
    finally:
        engine.dispose()
    return app_role_url(superuser_url)


def app_role_url(url: str) -> str:
    """``url`` with the app role as its user (the embedded server trusts local connections)."""
    return make_url(url).set(username=APP_ROLE, password=None).render_as_string(hide_password=False)
