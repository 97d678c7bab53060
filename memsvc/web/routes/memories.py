"""One memory: content, versions and their diff, provenance, links; edit, delete, restore."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.errors import BadRequest, MemsvcError, NotFound
from memsvc.policy import writes
from memsvc.schemas import CubeRead, MemoryRead, MemoryUpdate, MemoryVersionRead
from memsvc.store import cubes
from memsvc.store import memories as store
from memsvc.store import versions as history
from memsvc.store.pagination import every
from memsvc.web import diff, queries
from memsvc.web.deps import Form, FormDep, SessionDep, StateDep, WebDep
from memsvc.web.errors import AdminRoute, from_pydantic
from memsvc.web.filters import LAYERS
from memsvc.web.render import SECURITY_HEADERS, page
from memsvc.web.session import WebSession

router = APIRouter(prefix="/admin/memories", route_class=AdminRoute, include_in_schema=False)

MESSAGES = {
    "saved": "Saved as a new version.",
    "unchanged": "Nothing changed, so no version was written.",
    "deleted": "Deleted. The memory can be restored.",
    "restored": "Restored.",
}


def _pick(versions: list[MemoryVersionRead], a: int | None, b: int | None) -> tuple[int, int]:
    """The two versions to compare: as asked, else the previous and the current one."""
    numbers = {v.version for v in versions}
    last = max(numbers)
    a = a if a is not None else max(last - 1, 1)
    b = b if b is not None else last
    for n in (a, b):
        if n not in numbers:
            raise NotFound(f"memory has no version {n}")
    return a, b


async def _context(
    request: Request, session: AsyncSession, web: WebSession, memory_id: uuid.UUID
) -> dict[str, Any]:
    """Everything the memory page shows."""
    mem = await store.get(session, tenant_id=web.tenant_id, memory_id=memory_id)
    cube: CubeRead | None
    try:
        cube = await cubes.get(session, tenant_id=web.tenant_id, cube_id=mem.cube_id)
    except NotFound:
        cube = None  # a retired cube: its memories stay readable
    versions = await every(
        lambda cursor: history.versions(
            session, tenant_id=web.tenant_id, memory_id=memory_id, cursor=cursor, limit=1000
        )
    )
    try:
        a = int(request.query_params["a"]) if request.query_params.get("a") else None
        b = int(request.query_params["b"]) if request.query_params.get("b") else None
    except ValueError as exc:
        raise BadRequest("a and b must be version numbers", code="invalid_version") from exc
    a, b = _pick(versions, a, b)
    by_number = {v.version: v for v in versions}
    prov = await history.provenance(session, tenant_id=web.tenant_id, memory_id=memory_id)
    causes = [v.caused_by for v in prov.versions if v.caused_by is not None]
    known = await queries.memory_ids_exist(session, tenant_id=web.tenant_id, ids=causes)
    links = await queries.links_of(session, tenant_id=web.tenant_id, memory_id=memory_id)
    msg = MESSAGES.get(request.query_params.get("msg", ""))
    return {
        "mem": mem,
        "cube": cube,
        "versions": versions,
        "a": a,
        "b": b,
        "fields": diff.compare(by_number[a], by_number[b]) if a != b else [],
        "provenance": list(reversed(prov.versions)),
        "known_causes": known,
        "links": links,
        "layers": LAYERS,
        "message": msg,
        "edit_error": None,
        "form": None,
    }


@router.get("/{memory_id}")
async def memory_page(
    request: Request, memory_id: uuid.UUID, web: WebDep, session: SessionDep
) -> Response:
    """One memory with its history, provenance and links (404 for other tenants' ids)."""
    return page(request, "memory.html", **await _context(request, session, web, memory_id))


async def _form_base(
    session: AsyncSession, *, tenant_id: uuid.UUID, current: MemoryRead, form: Form
) -> MemoryRead | MemoryVersionRead:
    """The version the form was opened at: its fields are what the operator saw."""
    try:
        number = int(form.get("expected_version"))
    except ValueError:
        return current  # the update model refuses it with the API's message
    if not 1 <= number < current.version:
        return current
    return await history.version(session, tenant_id=tenant_id, memory_id=current.id, number=number)


def _update_from_form(form: Form, current: MemoryRead | MemoryVersionRead) -> MemoryUpdate | None:
    """A PATCH of only the fields the operator changed from ``current`` (None: nothing)."""
    changes: dict[str, Any] = {}
    content = form.get("content").replace("\r\n", "\n")
    if content != current.content:
        changes["content"] = content
    for name in ("kind", "layer"):
        value = form.get(name).strip()
        if value != getattr(current, name):
            changes[name] = value
    tags = [t.strip() for t in form.get("tags").split(",") if t.strip()]
    if tags != current.tags:
        changes["tags"] = tags
    raw_importance = form.get("importance").strip()
    try:
        importance = float(raw_importance) if raw_importance else current.importance
    except ValueError:
        changes["importance"] = raw_importance  # let the model refuse it with the API's message
    else:
        if importance != current.importance:
            changes["importance"] = importance
    if not changes:
        return None
    try:
        return MemoryUpdate(
            expected_version=form.get("expected_version") or 0,
            reason=form.optional("reason"),
            **changes,
        )
    except ValidationError as exc:
        raise from_pydantic(exc) from exc


@router.post("/{memory_id}/edit")
async def edit(
    request: Request,
    memory_id: uuid.UUID,
    form: FormDep,
    web: WebDep,
    session: SessionDep,
    state: StateDep,
) -> Response:
    """Apply an edit as a new version (rebased over enrichment since the form was opened);
    a conflicting change since shows the conflict."""
    current = await store.get(session, tenant_id=web.tenant_id, memory_id=memory_id)
    # Compared with the version the form showed, not the latest: fields enrichment changed
    # since are not the operator's edits (and would make the edit a conflict).
    base = await _form_base(session, tenant_id=web.tenant_id, current=current, form=form)
    try:
        update = _update_from_form(form, base)
        if update is None:
            return _back(memory_id, "unchanged")
        await writes.update_memory(
            session,
            runtime=state.runtime,
            limits=state.settings.limits,
            principal=web.principal,
            memory_id=memory_id,
            data=update,
        )
    except MemsvcError as err:
        if isinstance(err, NotFound):
            raise
        ctx = await _context(request, session, web, memory_id)
        ctx.update(edit_error=err, form={k: form.get(k) for k in _EDIT_FIELDS})
        return page(request, "memory.html", status=err.status, **ctx)
    return _back(memory_id, "saved")


_EDIT_FIELDS = ("content", "kind", "layer", "tags", "importance", "reason", "expected_version")


def _back(memory_id: uuid.UUID, msg: str) -> Response:
    return RedirectResponse(
        f"/admin/memories/{memory_id}?msg={msg}", status_code=303, headers=SECURITY_HEADERS
    )


@router.post("/{memory_id}/delete")
async def delete(memory_id: uuid.UUID, _: FormDep, web: WebDep, session: SessionDep) -> Response:
    """Soft delete (a new version; restorable)."""
    await writes.delete_memory(session, principal=web.principal, memory_id=memory_id)
    return _back(memory_id, "deleted")


@router.post("/{memory_id}/restore")
async def restore(memory_id: uuid.UUID, _: FormDep, web: WebDep, session: SessionDep) -> Response:
    """Undo a soft delete (a new version)."""
    await writes.restore_memory(session, principal=web.principal, memory_id=memory_id)
    return _back(memory_id, "restored")
