"""Drives a freshly served memsvc as a new user would, from a client-only install.

Run by .ci/user_path.sh with the client virtualenv's interpreter: checks that the install
holds no server packages, waits for `memsvc serve`, reads the printed admin key, then writes
and searches through the SDK.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

SERVER_ONLY = ("torch", "sqlalchemy", "fastapi", "psycopg", "numpy", "litellm", "uvicorn")


def wait_ready(log: Path, pid: int, timeout: float) -> str:
    """The serve log once it says ready; fails when the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if "memsvc: ready on" in text:
            return text
        if not Path(f"/proc/{pid}").exists():
            sys.exit(f"user path: memsvc serve exited before it was ready:\n{text[-4000:]}")
        time.sleep(1)
    sys.exit(f"user path: memsvc serve not ready after {timeout:.0f} s")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--log", type=Path, required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--timeout", type=float, default=1200)
    args = p.parse_args()

    present = [m for m in SERVER_ONLY if importlib.util.find_spec(m) is not None]
    assert not present, f"the client-only install pulled server packages: {present}"

    # The client install still has the `memsvc` command; it says what the service needs.
    cli = subprocess.run(
        [str(Path(sys.prefix) / "bin" / "memsvc"), "serve"], capture_output=True, text=True
    )
    assert cli.returncode == 2 and "memsvc[server]" in cli.stderr, (cli.returncode, cli.stderr)

    import httpx

    from memsvc.sdk import MemoryClient

    started = time.monotonic()
    log = wait_ready(args.log, args.pid, args.timeout)
    key_file = args.data_dir / "admin.key"
    key = key_file.read_text().strip()
    assert key and key in log, "the admin key was not printed on first start"
    assert key_file.stat().st_mode & 0o777 == 0o600, oct(key_file.stat().st_mode)
    assert httpx.get(f"{args.url}/healthz", timeout=10).status_code == 200

    with MemoryClient(args.url, api_key=key) as m:
        cube = m.create_cube("user-path")
        m.add(cube.id, "Prefers window seats on long flights", kind="preference", tags=["travel"])
        m.add(cube.id, "Is allergic to peanuts")
        m.add(cube.id, "Works on the billing service")
        hits = m.search(cube.id, "where does the user like to sit on a plane?").results
        assert hits and hits[0].memory.content.startswith("Prefers window seats"), hits
    print(
        f"user path: served, wrote and searched through the client-only SDK "
        f"(ready after {time.monotonic() - started:.0f} s of waiting; pid {os.getpid()})"
    )


if __name__ == "__main__":
    main()
