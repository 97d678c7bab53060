"""OpenAI Agents SDK memory tools on memsvc (``pip install 'memsvc[agents]'``).

``memory_tools(client)`` gives three ``function_tool``s, ``remember``, ``recall`` and
``forget``, with the same behaviour and compact JSON answers as the MCP server's tools
(``memsvc.mcp.ops``): a bad argument or a service error comes back to the model as text,
never as an exception that ends the run. ``ingest_tool(client)`` adds the MCP server's
``ingest``: conversation turns handed to the service's write policy.
"""

from __future__ import annotations

from collections.abc import Awaitable

from agents import FunctionTool, function_tool

from memsvc.errors import MemsvcError
from memsvc.mcp import ops
from memsvc.schemas.cubes import PolicyName
from memsvc.sdk import AsyncMemoryClient


async def _answer(call: Awaitable[str]) -> str:
    try:
        return await call
    except ops.ToolFailure as exc:
        return ops.dump({"error": str(exc)})
    except MemsvcError as exc:
        return ops.dump({"error": ops.explain_failure(exc)})


def memory_tools(
    client: AsyncMemoryClient,
    *,
    cube: str = ops.DEFAULT_CUBE,
    user_id: str | None = None,
    agent_id: str | None = None,
) -> list[FunctionTool]:
    """``remember`` / ``recall`` / ``forget`` on one cube (id, or a name created on first
    use), writing as ``user_id`` / ``agent_id`` when given."""
    defaults = ops.Defaults(cube=cube, user_id=user_id, agent_id=agent_id)
    binding = ops.Binding(client, defaults, key="agents", cubes=ops.CubeCache())

    async def remember(content: str, tags: list[str] | None = None) -> str:
        """Store one fact, preference or event about the user or the task for later.

        Args:
            content: The memory, as one self-contained sentence.
            tags: Optional short labels to filter by later.
        """
        return await _answer(
            ops.remember(
                binding,
                content=content,
                messages=None,
                tags=tags,
                kind=None,
                user_id=None,
                agent_id=None,
                cube=None,
            )
        )

    async def recall(query: str, top_k: int = 5, tags: list[str] | None = None) -> str:
        """Search long-term memory; the best matches with ids, content, when and why.

        Args:
            query: What to look for, in natural language.
            top_k: How many memories to return (1-50).
            tags: Only memories with any of these tags.
        """
        if not 1 <= top_k <= 50:
            return ops.dump({"error": "top_k must be between 1 and 50"})
        return await _answer(
            ops.recall(binding, query=query, top_k=top_k, tags=tags, user_id=None, cube=None)
        )

    async def forget(memory_id: str) -> str:
        """Forget a memory that is wrong or no longer true (it can be restored by an operator).

        Args:
            memory_id: The id of the memory, from remember or recall.
        """
        return await _answer(ops.forget(binding, memory=memory_id))

    return [function_tool(remember), function_tool(recall), function_tool(forget)]


def ingest_tool(
    client: AsyncMemoryClient,
    *,
    cube: str = ops.DEFAULT_CUBE,
    user_id: str | None = None,
    agent_id: str | None = None,
    policy: PolicyName | None = None,
) -> FunctionTool:
    """``ingest_conversation`` on one cube: the turns go through ``policy`` (default: the
    cube's), written as ``user_id`` / ``agent_id`` when given."""
    defaults = ops.Defaults(cube=cube, user_id=user_id, agent_id=agent_id)
    binding = ops.Binding(client, defaults, key="agents", cubes=ops.CubeCache())

    async def ingest_conversation(messages: list[ops.Turn]) -> str:
        """Hand conversation turns to long-term memory, which decides what to keep; returns
        the decisions counted by operation and the memories written.

        Args:
            messages: The turns, oldest first, each with role, content and the speaker's name.
        """
        return await _answer(
            ops.ingest(
                binding, messages=messages, policy=policy, user_id=None, agent_id=None, cube=None
            )
        )

    return function_tool(ingest_conversation)
