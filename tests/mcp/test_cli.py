"""``memsvc mcp --print-config``, ``memsvc tools --schema`` and the missing-extra hint."""

from __future__ import annotations

import builtins
import json

import pytest

from memsvc.cli import main
from memsvc.mcp.stdio import tool_schemas


def test_print_config_is_the_mcp_servers_block(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMSVC_API_KEY", "sk-test")
    assert main(["mcp", "--print-config", "--url", "http://mem:8080", "--cube", "notes"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "mcpServers": {
            "memsvc": {
                "command": "memsvc",
                "args": ["mcp"],
                "env": {
                    "MEMSVC_URL": "http://mem:8080",
                    "MEMSVC_API_KEY": "sk-test",
                    "MEMSVC_CUBE": "notes",
                },
            }
        }
    }
    assert main(["mcp", "--print-config", "--http", "--url", "http://mem:8080"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "mcpServers": {
            "memsvc": {
                "type": "http",
                "url": "http://mem:8080/mcp",
                "headers": {"Authorization": "Bearer sk-test"},
            }
        }
    }


def test_tool_schemas_export(capsys: pytest.CaptureFixture[str]) -> None:
    schemas = tool_schemas()
    assert [s["name"] for s in schemas] == ["remember", "recall", "ask", "forget"]
    recall = schemas[1]["parameters"]
    assert recall["required"] == ["query"]  # type: ignore[index]
    assert set(recall["properties"]) == {"query", "top_k", "tags", "user_id", "cube", "now"}  # type: ignore[index]
    ask = schemas[2]["parameters"]
    assert ask["required"] == ["question"]  # type: ignore[index]
    assert set(ask["properties"]) == {  # type: ignore[index]
        "question", "top_k", "tags", "user_id", "cube", "now", "mode",
        "max_cycles", "max_llm_calls", "max_tokens", "deadline_ms",
    }  # fmt: skip
    assert "ctx" not in schemas[0]["parameters"]["properties"]  # type: ignore[index]
    assert main(["tools", "--schema"]) == 0
    assert json.loads(capsys.readouterr().out) == schemas


def test_without_the_mcp_package_exit_2_with_a_hint(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = builtins.__import__

    def no_mcp(name: str, *args: object, **kwargs: object) -> object:
        if name == "mcp" or name.startswith("mcp."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_mcp)
    assert main(["mcp"]) == 2
    assert "pip install 'memsvc[mcp]'" in capsys.readouterr().err
    assert main(["tools", "--schema"]) == 2
