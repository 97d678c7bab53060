"""Files in and out of a cube: ``memsvc export`` / ``memsvc import`` on the SDK client.

An import sends the file in chunks of lines, one request each (all or nothing on the
server), and after each acknowledged chunk writes a checkpoint next to the file: the
target cube and how many lines landed. A re-run with the same checkpoint starts after
them; should the checkpoint lag (a crash between the answer and its write), re-sent lines
land on the rows they made the first time (ids derive from the target cube and the line's
exported id), so nothing is written twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from memsvc.errors import MemsvcError
from memsvc.schemas.transfer import MemoryRecord, VersionRecord
from memsvc.sdk._client import MemoryClient
from memsvc.sdk._types import ID

CHUNK_LINES = 500
CHUNK_BYTES = 16 * 1024 * 1024


@dataclass
class Checkpoint:
    """How far an import of one file into one cube has come."""

    path: Path
    file_digest: str
    cube_id: str | None = None
    lines_done: int = 0

    @classmethod
    def load(cls, path: Path, file_digest: str) -> Checkpoint:
        """The saved checkpoint of this file, or a fresh one (another file's is ignored)."""
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls(path, file_digest)
        if not isinstance(data, dict) or data.get("file_digest") != file_digest:
            return cls(path, file_digest)
        return cls(path, file_digest, data.get("cube_id"), int(data.get("lines_done", 0)))

    def save(self) -> None:
        """Write atomically (a crash leaves the old or the new one, never half)."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        body = {"file_digest": self.file_digest, "cube_id": self.cube_id}
        tmp.write_text(json.dumps({**body, "lines_done": self.lines_done}))
        os.replace(tmp, self.path)

    def clear(self) -> None:
        """Forget it (the import finished)."""
        self.path.unlink(missing_ok=True)


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (a checkpoint belongs to exactly one file's content)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class ImportReport:
    """What a file import did (counts summed over its requests)."""

    cube_id: str
    lines: int = 0
    resumed_at: int = 0
    created: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)


def chunks(lines: Iterable[bytes], start: int = 0) -> Iterator[tuple[int, list[bytes]]]:
    """(first line number, lines) in bounded chunks, lines before ``start`` dropped."""
    chunk: list[bytes] = []
    size = 0
    first = start + 1
    for number, line in enumerate(lines, start=1):
        if number <= start:
            continue
        if chunk and (len(chunk) >= CHUNK_LINES or size + len(line) > CHUNK_BYTES):
            yield first, chunk
            chunk, size, first = [], 0, number
        chunk.append(line)
        size += len(line)
    if chunk:
        yield first, chunk


def import_file(
    client: MemoryClient,
    lines: list[bytes],
    *,
    cube_id: ID,
    checkpoint: Checkpoint | None = None,
    progress: Callable[[int], None] | None = None,
    timeout: float | None = None,
) -> ImportReport:
    """Send ``lines`` into a cube in chunks, saving a checkpoint after each."""
    start = checkpoint.lines_done if checkpoint else 0
    report = ImportReport(cube_id=str(cube_id), resumed_at=start)
    for first, chunk in chunks(lines, start):
        try:
            result = client.import_records(cube_id, chunk, timeout=timeout)
        except MemsvcError as exc:
            detail = exc.detail
            if isinstance(detail, dict) and isinstance(detail.get("line"), int):
                # The server counts lines of the request: say which line of the file.
                detail["file_line"] = first - 1 + detail["line"]
            raise
        for name, n in result.created.model_dump().items():
            report.created[name] = report.created.get(name, 0) + n
        for name, n in result.skipped.model_dump().items():
            report.skipped[name] = report.skipped.get(name, 0) + n
        report.lines = first - 1 + len(chunk)
        if checkpoint is not None:
            checkpoint.lines_done = report.lines
            checkpoint.save()
        if progress is not None:
            progress(len(chunk))
    return report


# -- mem0 -------------------------------------------------------------------------------


def _when(value: Any, default: datetime) -> datetime:
    if isinstance(value, str) and value:
        try:
            at = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return default
        return at if at.tzinfo else at.replace(tzinfo=UTC)
    return default


def mem0_items(data: Any) -> list[dict[str, Any]]:
    """The memories of a mem0 export: a list, or ``{"results": [...]}`` / ``{"memories": ...}``."""
    if isinstance(data, dict):
        data = data.get("results", data.get("memories", data.get("items")))
    if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
        raise ValueError("not a mem0 export: expected a list of memories")
    return data


def from_mem0(item: dict[str, Any], *, now: datetime | None = None) -> MemoryRecord:
    """One mem0 memory as an export record: text, user/agent/run ids, metadata and times
    map; mem0's ``hash`` and any field without a place here go into ``metadata["mem0"]``."""
    now = now or datetime.now(UTC)
    created = _when(item.get("created_at"), now)
    updated = _when(item.get("updated_at"), created)
    content = str(item.get("memory") or item.get("text") or item.get("data") or "")
    metadata = dict(item.get("metadata") or {})
    known = {"id", "memory", "text", "data", "metadata", "user_id", "agent_id", "run_id"}
    known |= {"created_at", "updated_at"}
    rest = {k: v for k, v in item.items() if k not in known and v is not None}
    if rest:
        metadata["mem0"] = rest
    ids = {k: str(item[k]) if item.get(k) is not None else None for k in known}
    if not content.strip():
        raise ValueError(f"mem0 memory {ids['id']} has no text")
    version = VersionRecord(
        version=1,
        change_kind="create",
        content=content,
        kind="fact",
        layer="semantic",
        metadata=metadata,
        user_id=ids["user_id"],
        agent_id=ids["agent_id"],
        session_id=ids["run_id"],
        importance=0.5,
        status="active",
        actor="import:mem0",
        policy="mem0",
        created_at=created,
    )
    return MemoryRecord(
        id=str(item.get("id") or uuid.uuid5(uuid.NAMESPACE_OID, content)),
        origin="mem0",
        content=content,
        metadata=metadata,
        user_id=version.user_id,
        agent_id=version.agent_id,
        session_id=version.session_id,
        version=1,
        created_at=created,
        updated_at=updated,
        versions=[version],
    )


def mem0_lines(data: Any) -> list[bytes]:
    """A mem0 export as import lines (memories with blank text are left out)."""
    now = datetime.now(UTC)
    items = [x for x in mem0_items(data) if str(x.get("memory") or x.get("text") or "").strip()]
    return [from_mem0(x, now=now).model_dump_json().encode() for x in items]
