"""Every code snippet of README.md runs against a served instance, so the docs cannot drift.

The set-up commands (install + serve, install + test) are what CI itself runs (.ci/run);
every other block is executed here, as written, with only the address of the test server
put in place of the README's.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from memsvc.config import Settings
from tests.conftest import LiveServer

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"
# Run by .ci/run on every change (install, serve, the test suite), not from here.
SETUP = {"bash scripts/serve.sh", "bash scripts/test.sh"}
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(README.read_text())]


def runnable() -> list[tuple[str, str]]:
    return [
        (lang, code)
        for lang, code in blocks()
        if not any(code.strip().startswith(cmd) for cmd in SETUP)
    ]


@pytest.fixture()
def settings(tmp_path: Path, database_url: str) -> Settings:
    """The README's default data directory name, so its snippets read the key as written."""
    return Settings(
        data_dir=tmp_path / "memsvc-data",
        database_url=database_url,  # type: ignore[arg-type]
        print_admin_key=False,
    )


def test_every_readme_block_is_a_setup_command_or_runs_here() -> None:
    langs = [lang for lang, _ in runnable()]
    assert sorted(set(langs)) == ["bash", "python"], "a new README snippet needs a test here"
    assert langs.count("bash") == 1 and langs.count("python") == len(EXPECTED_OUTPUT)
    assert len(blocks()) - len(langs) == len(SETUP)


def _at(code: str, default: str, url: str) -> str:
    assert code.count(default) >= 1, f"the snippet no longer names {default}"
    return code.replace(default, url)


def _documents(text: str) -> list[dict[str, object]]:
    """The JSON documents curl printed one after another (curl adds no newline)."""
    decoder, docs, at = json.JSONDecoder(), [], 0
    while at < len(text.rstrip()):
        doc, at = decoder.raw_decode(text, at)
        docs.append(doc)
        while at < len(text) and text[at].isspace():
            at += 1
    return docs


# What each python block prints, in README order (its stdout, compared line by line).
EXPECTED_OUTPUT: list[Callable[[list[str]], bool]] = [
    lambda lines: lines[0].endswith(" Prefers window seats"),
    lambda lines: lines == ["5", "['Lives in Lyon', 'Lives in Paris']"],
    lambda lines: lines == ["diet", "None"],
]


@pytest.mark.parametrize("index", range(len(EXPECTED_OUTPUT)))
def test_python_snippet(live_server: LiveServer, tmp_path: Path, index: int) -> None:
    code = [c for lang, c in runnable() if lang == "python"][index]
    code = _at(code, "http://127.0.0.1:8080", live_server.url)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert EXPECTED_OUTPUT[index](out.stdout.splitlines()), out.stdout


def test_curl_snippet(live_server: LiveServer, tmp_path: Path) -> None:
    [code] = [c for lang, c in runnable() if lang == "bash"]
    code = _at(code, "localhost:8080", live_server.url.removeprefix("http://"))
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    created, found = _documents(out.stdout)
    [memory] = created["items"]  # type: ignore[index]
    assert memory["content"] == "Likes jazz"
    [hit] = found["results"]  # type: ignore[index]
    assert hit["memory"]["id"] == memory["id"]
    assert hit["explain"]["vector"]["rank"] == 1  # explain: true names each channel's rank
