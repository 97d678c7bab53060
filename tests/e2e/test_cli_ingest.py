"""``memsvc ingest`` and ``memsvc policy`` against a served instance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memsvc.cli import main
from memsvc.sdk import MemoryClient
from tests.conftest import LiveServer

LINES = [
    {"role": "user", "name": "Ann", "content": "I moved to Lisbon last spring."},
    {"role": "assistant", "content": "How is Lisbon?"},
    {"role": "user", "name": "Ann", "content": "I love it, the light is amazing."},
    {"role": "user", "name": "Ann", "content": "I am allergic to peanuts."},
    {"role": "user", "name": "Ann", "content": "My sister Eva lives in Porto."},
]


def args(live: LiveServer, *rest: str) -> list[str]:
    return [*rest, "--url", live.url, "--api-key", live.admin_key]


def write_chat(path: Path) -> Path:
    path.write_text("".join(json.dumps({**m, "session_id": "s1"}) + "\n" for m in LINES) + "\n")
    return path


def test_ingest_in_batches_prints_a_summary_and_a_rerun_writes_nothing(
    live_server: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chat = write_chat(tmp_path / "chat.jsonl")
    with MemoryClient(live_server.url, live_server.admin_key) as client:
        cube = str(client.create_cube("chats").id)
        run = args(live_server, "ingest", "chats", str(chat), "--policy", "store_all")
        assert main([*run, "--user-id", "ann", "--batch", "2"]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary == {
            "cube_id": cube,
            "messages": 5,
            "decisions": {"insert": 5},
            "memories_written": 5,
            "warnings": [],
        }
        decisions = list(client.iter_decisions(cube))
        assert len({d.source_id for d in decisions}) == 5
        assert {m.user_id for m in client.iter_memories(cube)} == {"ann"}
        # The same file and options: each batch's key is the same, so it is replayed.
        assert main([*run, "--user-id", "ann", "--batch", "2"]) == 0
        assert json.loads(capsys.readouterr().out) == summary
        assert len(list(client.iter_memories(cube))) == 5


def test_ingest_refuses_a_bad_file_or_cube_before_sending(
    live_server: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(LINES[0]) + "\n" + json.dumps({"role": "user"}) + "\n")
    with MemoryClient(live_server.url, live_server.admin_key) as client:
        cube = str(client.create_cube("chats").id)
        assert main(args(live_server, "ingest", cube, str(bad))) == 1
        assert "line 2 of" in capsys.readouterr().err
        assert list(client.iter_memories(cube)) == []
    chat = write_chat(tmp_path / "chat.jsonl")
    assert main(args(live_server, "ingest", "nope", str(chat))) == 1
    assert "no cube 'nope'" in capsys.readouterr().err


def test_policy_list_and_the_errors_of_activate_and_rollback(
    live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args(live_server, "policy", "list")) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in listed["items"]] == ["store_all", "learned", "llm"]
    assert main(args(live_server, "policy", "rollback", "learned")) == 1
    assert "nothing_to_roll_back" in capsys.readouterr().err
    assert main(args(live_server, "policy", "activate", "store_all", "1")) == 1
    assert "not_trainable" in capsys.readouterr().err
    assert main(args(live_server, "policy", "train", "llm")) == 1
    assert "not_trainable" in capsys.readouterr().err
    assert main(args(live_server, "policy", "train", "--cube", "nope")) == 1
    assert "no cube 'nope'" in capsys.readouterr().err
