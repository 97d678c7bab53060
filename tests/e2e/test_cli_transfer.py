"""``memsvc export`` / ``memsvc import`` against a served instance: round trip, resume, mem0."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from memsvc.cli import main
from memsvc.sdk import LinkCreate, MemoryClient, MemoryCreate, SourceCreate, TransportError
from memsvc.sdk import transfer as sdk_transfer
from tests.conftest import LiveServer


def args(live: LiveServer, *rest: str) -> list[str]:
    return [*rest, "--url", live.url, "--api-key", live.admin_key]


def populate(client: MemoryClient) -> str:
    cube = client.create_cube("src").id
    a, b, c = client.add_many(
        cube,
        [
            MemoryCreate(
                content="Caroline moved to Berlin.",
                sources=[SourceCreate(speaker="Caroline", text="I moved!")],
            ),
            MemoryCreate(content="Max is Caroline's dog.", tags=["pets"]),
            MemoryCreate(content="Melanie paints.", layer="core"),
        ],
    )
    client.update_memory(a.id, expected_version=a.version, content="Caroline lives in Munich.")
    client.delete_memory(c.id)
    client.create_link(LinkCreate(source_id=a.id, target_id=b.id, relation="related", reason="r"))
    return str(cube)


def records(client: MemoryClient, cube: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in client.iter_export(cube)]


def same_cube(first: list[dict[str, Any]], second: list[dict[str, Any]], target: str) -> None:
    """``second`` is ``first`` imported into ``target``: equal once ids are mapped."""

    def mapped(old: str) -> str:
        return str(uuid.uuid5(uuid.UUID(target), old))

    assert [r["type"] for r in first] == [r["type"] for r in second]
    for old, new in zip(first[1:-1], second[1:-1], strict=True):
        assert new["id"] == mapped(old["id"])
        if old["type"] == "memory":
            assert new["content"] == old["content"] and new["status"] == old["status"]
            assert [v["content"] for v in new["versions"]] == [
                v["content"] for v in old["versions"]
            ]
            assert [v["imported_from"]["memory_id"] for v in new["versions"]] == [old["id"]] * len(
                old["versions"]
            )
        if old["type"] == "link":
            assert new["source_id"] == mapped(old["source_id"])
    assert first[-1] == second[-1]


def test_export_then_import_into_a_new_cube(live_server: LiveServer, tmp_path: Path) -> None:
    out = tmp_path / "cube.jsonl"
    with MemoryClient(live_server.url, live_server.admin_key) as client:
        cube = populate(client)
        assert main(args(live_server, "export", "src", "-o", str(out))) == 0
        assert main(args(live_server, "import", str(out))) == 0
        [target] = [c for c in client.iter_cubes() if c.name == "src (2)"]
        same_cube(records(client, cube), records(client, str(target.id)), str(target.id))
    assert not (tmp_path / "cube.jsonl.import-checkpoint.json").exists()


def test_export_to_stdout(live_server: LiveServer, capsys: pytest.CaptureFixture[str]) -> None:
    with MemoryClient(live_server.url, live_server.admin_key) as client:
        cube = populate(client)
    assert main(args(live_server, "export", cube)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert json.loads(lines[0])["cube"]["name"] == "src"
    assert json.loads(lines[-1])["counts"] == {
        "sources": 1,
        "memories": 3,
        "versions": 5,
        "links": 1,
    }
    assert main(args(live_server, "export", "no-such-cube")) == 1


def test_an_interrupted_import_resumes_where_it_stopped(
    live_server: LiveServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "cube.jsonl"
    with MemoryClient(live_server.url, live_server.admin_key) as client:
        cube = populate(client)
        assert main(args(live_server, "export", cube, "-o", str(out))) == 0
    monkeypatch.setattr(sdk_transfer, "CHUNK_LINES", 2)
    real = MemoryClient.import_records
    calls: list[int] = []

    def flaky(self: MemoryClient, *a: Any, **kw: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise TransportError("connection lost")
        return real(self, *a, **kw)

    monkeypatch.setattr(MemoryClient, "import_records", flaky)
    assert main(args(live_server, "import", str(out), "--cube", "dst")) == 1
    assert "connection lost" in capsys.readouterr().err
    checkpoint = json.loads((tmp_path / "cube.jsonl.import-checkpoint.json").read_text())
    assert checkpoint["lines_done"] == 2
    capsys.readouterr()
    assert main(args(live_server, "import", str(out), "--cube", "ignored")) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["resumed_at"] == 2 and report["cube_id"] == checkpoint["cube_id"]
    assert report["skipped"] == {"sources": 0, "memories": 0, "versions": 0, "links": 0}
    # A checkpoint that lags (the answer came, the save did not): re-sent lines are no-ops.
    (tmp_path / "again.json").write_text(json.dumps({**checkpoint, "lines_done": 0}))
    again_at = str(tmp_path / "again.json")
    assert main(args(live_server, "import", str(out), "--checkpoint", again_at)) == 0
    again = json.loads(capsys.readouterr().out)
    assert sum(again["created"].values()) == 0 and again["skipped"]["memories"] == 3
    with MemoryClient(live_server.url, live_server.admin_key) as client:
        same_cube(records(client, cube), records(client, report["cube_id"]), report["cube_id"])


def test_a_bad_line_names_the_line_of_the_file(
    live_server: LiveServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "cube.jsonl"
    with MemoryClient(live_server.url, live_server.admin_key) as client:
        cube = populate(client)
        assert main(args(live_server, "export", cube, "-o", str(out))) == 0
    lines = out.read_text().splitlines()
    lines.insert(4, '{"type": "memory", "id": 1}')
    out.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(sdk_transfer, "CHUNK_LINES", 2)
    assert main(args(live_server, "import", str(out), "--cube", "dst")) == 1
    assert "line 5 of" in capsys.readouterr().err
    checkpoint = json.loads((tmp_path / "cube.jsonl.import-checkpoint.json").read_text())
    assert checkpoint["lines_done"] == 4


MEM0 = {
    "results": [
        {
            "id": "6f1f1c1e-4b36-4f5b-9c2a-1a2b3c4d5e6f",
            "memory": "Likes hiking in the Alps",
            "hash": "a1b2c3",
            "metadata": {"source": "chat"},
            "user_id": "alice",
            "agent_id": "travel-bot",
            "run_id": "run-7",
            "categories": ["hobbies"],
            "created_at": "2024-07-20T01:32:33.123456-07:00",
            "updated_at": "2024-07-21T10:00:00-07:00",
        },
        {
            "id": "m-2",
            "memory": "Is vegetarian",
            "hash": "d4e5",
            "metadata": None,
            "user_id": "alice",
            "created_at": "2024-07-22T08:00:00Z",
            "updated_at": None,
        },
        {"id": "m-3", "memory": "   ", "user_id": "alice"},
    ]
}


def test_import_from_mem0(
    live_server: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "mem0.json"
    path.write_text(json.dumps(MEM0))
    assert main(args(live_server, "import", str(path), "--from", "mem0", "--cube", "alice")) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["created"]["memories"] == 2
    with MemoryClient(live_server.url, live_server.admin_key) as client:
        got = {m.content: m for m in client.iter_memories(report["cube_id"])}
        hike = got["Likes hiking in the Alps"]
        assert (hike.user_id, hike.agent_id, hike.session_id) == ("alice", "travel-bot", "run-7")
        assert hike.metadata == {
            "source": "chat",
            "mem0": {"hash": "a1b2c3", "categories": ["hobbies"]},
        }
        assert hike.created_at == datetime.fromisoformat("2024-07-20T01:32:33.123456-07:00")
        assert hike.updated_at == datetime.fromisoformat("2024-07-21T10:00:00-07:00")
        [v1] = list(client.iter_versions(hike.id))
        assert v1.actor == "import:mem0" and v1.imported_from == {
            "system": "mem0",
            "cube_id": None,
            "memory_id": "6f1f1c1e-4b36-4f5b-9c2a-1a2b3c4d5e6f",
            "version": 1,
        }
        veg = got["Is vegetarian"]
        assert veg.metadata == {"mem0": {"hash": "d4e5"}} and veg.agent_id is None
        hits = client.search(report["cube_id"], "outdoor activities in mountains").results
        assert hits[0].memory.id == hike.id
