"""``memsvc.sdk.transfer`` and the SDK's export/import calls, on a fake server."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from memsvc.sdk import MemoryClient, NotFound
from memsvc.sdk import transfer as t

from .fakes import CUBE_ID, FakeServer, async_client, error

RESULT = {
    "lines": 2,
    "created": {"sources": 0, "memories": 2, "versions": 2, "links": 0},
    "skipped": {"sources": 0, "memories": 0, "versions": 0, "links": 0},
    "id_map_namespace": str(CUBE_ID),
    "finished_at": "2025-01-01T00:00:00Z",
}


def test_chunks_bound_lines_and_skip_what_landed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(t, "CHUNK_LINES", 2)
    lines = [b"a", b"b", b"c", b"d", b"e"]
    assert list(t.chunks(lines)) == [(1, [b"a", b"b"]), (3, [b"c", b"d"]), (5, [b"e"])]
    assert list(t.chunks(lines, start=3)) == [(4, [b"d", b"e"])]
    monkeypatch.setattr(t, "CHUNK_BYTES", 3)
    assert list(t.chunks([b"xx", b"yy", b"z"])) == [(1, [b"xx"]), (2, [b"yy", b"z"])]


def test_checkpoint_belongs_to_one_file(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    cp = t.Checkpoint(path, "digest-1", cube_id="c1", lines_done=7)
    cp.save()
    assert t.Checkpoint.load(path, "digest-1").lines_done == 7
    assert t.Checkpoint.load(path, "digest-2").lines_done == 0  # another file's
    path.write_text("{half")
    assert t.Checkpoint.load(path, "digest-1").cube_id is None
    cp.clear()
    assert not path.exists()


def test_import_file_saves_progress_and_names_the_file_line(
    server: FakeServer, client: MemoryClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(t, "CHUNK_LINES", 2)
    server.json(200, RESULT)
    server.reply(error(422, "validation_error", "line 1 bad", {"line": 1}))
    cp = t.Checkpoint(tmp_path / "c.json", "d", cube_id=str(CUBE_ID))
    with pytest.raises(Exception) as caught:
        t.import_file(client, [b"1", b"2", b"3", b"4"], cube_id=CUBE_ID, checkpoint=cp)
    assert caught.value.detail == {"line": 1, "file_line": 3}  # type: ignore[attr-defined]
    assert json.loads((tmp_path / "c.json").read_text())["lines_done"] == 2
    assert server.requests[0].headers["content-type"] == "application/x-ndjson"
    assert server.requests[0].content == b"1\n2\n"
    assert server.requests[1].content == b"3\n4\n"


def test_import_is_retried_as_it_is_idempotent(server: FakeServer, client: MemoryClient) -> None:
    server.reply(httpx.Response(503)).json(200, RESULT)
    assert client.import_records(CUBE_ID, ['{"type":"end","counts":{}}']).created.memories == 2
    assert len(server.requests) == 2


def test_export_streams_lines_and_maps_errors(server: FakeServer, client: MemoryClient) -> None:
    server.reply(httpx.Response(200, content=b'{"type":"header"}\n\n{"type":"end"}\n'))
    assert list(client.iter_export(CUBE_ID)) == ['{"type":"header"}', '{"type":"end"}']
    server.reply(error(404, "cube_not_found"))
    with pytest.raises(NotFound):
        list(client.iter_export(CUBE_ID))


def test_async_export_and_import(server: FakeServer) -> None:
    server.reply(httpx.Response(200, content=b"a\nb\n")).json(200, RESULT)

    async def go() -> tuple[list[str], int]:
        async with async_client(server) as c:
            lines = [line async for line in c.iter_export(CUBE_ID, timeout=5)]
            result = await c.import_records(CUBE_ID, lines)
            return lines, result.lines

    assert asyncio.run(go()) == (["a", "b"], 2)
    assert server.requests[1].content == b"a\nb\n"


def test_mem0_records() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    rec = t.from_mem0(
        {"id": "x", "memory": "Likes tea", "user_id": 7, "hash": "h", "created_at": "bad"},
        now=now,
    )
    assert (rec.id, rec.origin, rec.content, rec.user_id) == ("x", "mem0", "Likes tea", "7")
    assert rec.metadata == {"mem0": {"hash": "h"}} and rec.created_at == now
    assert rec.versions[0].actor == "import:mem0"
    assert t.mem0_items([{"id": 1}]) == [{"id": 1}]
    assert len(t.mem0_lines({"results": [{"memory": "a"}, {"memory": " "}]})) == 1
    with pytest.raises(ValueError):
        t.mem0_items({"nothing": 1})
