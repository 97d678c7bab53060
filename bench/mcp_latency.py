"""Round-trip latency of each MCP tool over stdio (``memsvc mcp`` as a subprocess) and
streamable HTTP (the service's ``/mcp``), through the ``mcp`` SDK's own client.

    .venv/bin/python bench/mcp_latency.py -n 30 [--out mcp-latency.json]

Prints the median (and p90) milliseconds per tool and transport. The service runs in this
process (bench/_server.py), so the numbers include the tool's REST call(s) and the model
runtime (recall embeds the query; remember embeds the new memory).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._server import local_instance


@asynccontextmanager
async def connect(transport: str, url: str, key: str) -> AsyncIterator[object]:
    """An MCP client over ``transport``."""
    import httpx2
    from mcp import Client, StdioServerParameters
    from mcp.client.streamable_http import streamable_http_client

    cube = f"bench-{transport}"
    if transport == "stdio":
        env = {**os.environ, "MEMSVC_URL": url, "MEMSVC_API_KEY": key, "MEMSVC_CUBE": cube}
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "memsvc.cli", "mcp"], env=env
        )
        async with Client(params) as client:
            yield client
        return
    headers = {"Authorization": f"Bearer {key}", "X-Memsvc-Cube": cube}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
    ):
        yield client


async def measure(transport: str, url: str, key: str, n: int) -> dict[str, dict[str, float]]:
    """Median and p90 ms of each tool over ``n`` calls."""
    async with connect(transport, url, key) as client:
        call: Callable[[str, dict[str, object]], Awaitable[object]] = client.call_tool  # type: ignore[attr-defined]

        async def ok(tool: str, args: dict[str, object]) -> dict[str, object]:
            result = await call(tool, args)
            assert not result.is_error, result  # type: ignore[attr-defined]
            return json.loads(result.content[0].text)  # type: ignore[attr-defined, no-any-return]

        # Warm up: the cube is created on first use, connections opened.
        seed = await ok("remember", {"content": "warm-up memory about the bench"})
        anchor = seed["remembered"][0]["id"]  # type: ignore[index]
        timings: dict[str, list[float]] = {}

        async def timed(tool: str, args: dict[str, object]) -> dict[str, object]:
            started = time.perf_counter()
            answer = await ok(tool, args)
            timings.setdefault(tool, []).append((time.perf_counter() - started) * 1000)
            return answer

        for i in range(n):
            made = await timed(
                "remember", {"content": f"bench fact {i}: the sky was clear on day {i}"}
            )
            mid = made["remembered"][0]["id"]  # type: ignore[index]
            await timed("recall", {"query": f"weather on day {i}", "top_k": 5})
            await timed("history", {"memory_id": mid})
            await timed("link", {"source_id": mid, "target_id": anchor, "relation": "related"})
            await timed("neighbours", {"memory_id": mid})
            await timed("forget", {"memory_id": mid})
    return {
        tool: {
            "median_ms": round(statistics.median(values), 2),
            "p90_ms": round(sorted(values)[int(0.9 * (len(values) - 1))], 2),
        }
        for tool, values in timings.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=30, help="calls per tool and transport")
    parser.add_argument("--out", help="write the numbers as JSON here")
    args = parser.parse_args()
    report: dict[str, object] = {"n": args.n}
    with local_instance() as instance:
        for transport in ("http", "stdio"):
            report[transport] = anyio.run(
                measure, transport, instance.url, instance.api_key, args.n
            )
    print(f"{'tool':12s} {'http p50':>10s} {'http p90':>10s} {'stdio p50':>10s} {'stdio p90':>10s}")
    http, stdio = report["http"], report["stdio"]
    for tool in http:  # type: ignore[attr-defined]
        h, s = http[tool], stdio[tool]  # type: ignore[index]
        print(
            f"{tool:12s} {h['median_ms']:10.2f} {h['p90_ms']:10.2f} "
            f"{s['median_ms']:10.2f} {s['p90_ms']:10.2f}"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
