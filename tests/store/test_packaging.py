"""A wheel carries the migrations and prompt templates (not only an editable install)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from memsvc.config import REPO_ROOT


@pytest.mark.slow
def test_wheel_ships_migrations_and_prompts(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO_ROOT),
        ],
        check=True,
        timeout=240,
    )
    (wheel,) = tmp_path.glob("memsvc-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    migrations = sorted((REPO_ROOT / "migrations" / "versions").glob("*.py"))
    prompts = sorted((REPO_ROOT / "prompts").glob("*.j2"))
    assert migrations and prompts
    for f in migrations:
        assert f"memsvc/_migrations/versions/{f.name}" in names
    for f in prompts:
        assert f"memsvc/_prompts/{f.name}" in names
    assert {"memsvc/_migrations/env.py", "memsvc/_migrations/script.py.mako"} <= names
