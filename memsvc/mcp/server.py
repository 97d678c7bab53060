"""The MCP server: the tools of ``ops`` with descriptions and schemas written for a model."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Protocol

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from memsvc import __version__
from memsvc.errors import MemsvcError, NotFound
from memsvc.mcp import ops
from memsvc.mcp.ops import Binding, Budget, Message, Relation, ToolFailure, Turn
from memsvc.schemas.ask import MAX_CYCLES, MAX_DEADLINE_MS, MAX_LLM_CALLS, MAX_TOKENS, AskMode
from memsvc.schemas.cubes import PolicyName
from memsvc.schemas.ingest import MAX_MESSAGES as MAX_TURNS

log = logging.getLogger(__name__)

INSTRUCTIONS = (
    "Long-term memory. Call `recall` before answering anything that may depend on what you "
    "learned earlier (the user's preferences, facts, past decisions); call `ask` instead for a "
    "question whose answer joins several memories (who, when, what happened next: it probes "
    "memory in cycles and returns the evidence); call `remember` when you "
    "learn something worth keeping (one self-contained fact per memory reads best), or `ingest` "
    "to hand whole conversation turns to the service, which decides what to keep; `core` is "
    "the profile of a user or agent worth keeping in context. `forget` "
    "removes a memory that is wrong or unwanted; `history` shows how one changed; `link` and "
    "`neighbours` work with the graph of related memories. Ids come from remember/recall."
)


class Backend(Protocol):
    """Gives each tool call the caller's ``Binding`` (client, defaults, key)."""

    def bind(self, ctx: Context) -> AbstractAsyncContextManager[Binding]:
        """The binding for the request ``ctx`` belongs to."""
        ...


Cube = Annotated[
    str | None,
    Field(
        description="Cube (memory space) id or name; omit for the configured default. "
        "A new name creates the cube.",
        max_length=200,
    ),
]
MemoryRef = Annotated[
    str, Field(description="A memory id from remember or recall.", min_length=1, max_length=100)
]
Now = Annotated[
    str | None,
    Field(
        description=(
            "Your current date and time (ISO 8601, e.g. '2024-05-30T18:00:00Z'): "
            "'last Saturday' or 'two weeks ago' in the query are read against it."
        ),
        max_length=64,
    ),
]
Tags = Annotated[
    list[Annotated[str, Field(max_length=200)]] | None,
    Field(description="Short labels, e.g. ['preference', 'food'].", max_length=64),
]


async def _call(backend: Backend, ctx: Context, run: Callable[[Binding], Awaitable[str]]) -> str:
    """Run one tool; every failure becomes a tool error the model can read."""
    try:
        async with backend.bind(ctx) as binding:
            try:
                return await run(binding)
            except NotFound as exc:
                # A cached cube was deleted since: resolve (or create) it again, once.
                if exc.message != "cube not found" or not binding.cubes.drop(binding.key):
                    raise
                return await run(binding)
    except ToolFailure as exc:
        raise ToolError(str(exc)) from None
    except MemsvcError as exc:
        raise ToolError(ops.explain_failure(exc)) from None


def build_server(backend: Backend, *, name: str = "memsvc") -> MCPServer:
    """An ``MCPServer`` with the memory tools and resources, bound through ``backend``."""
    server: MCPServer = MCPServer(name, instructions=INSTRUCTIONS, version=__version__)
    write = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=False)
    read = ToolAnnotations(readOnlyHint=True)

    @server.tool(annotations=write, structured_output=False)
    async def remember(
        ctx: Context,
        content: Annotated[
            str | None,
            Field(
                description="What to remember, as one self-contained statement "
                "(e.g. 'Alice is vegetarian'). Give this or messages.",
                min_length=1,
                max_length=ops.MAX_CONTENT,
            ),
        ] = None,
        messages: Annotated[
            list[Message] | None,
            Field(
                description="Conversation turns to keep, each {'role': 'user'|'assistant', "
                "'content': '...'}; one memory per turn. Give this or content.",
                max_length=ops.MAX_MESSAGES,
            ),
        ] = None,
        tags: Tags = None,
        kind: Annotated[
            str | None,
            Field(
                description="fact (default), preference, event, instruction, ...", max_length=100
            ),
        ] = None,
        user_id: Annotated[
            str | None, Field(description="Whom it is about; omit for the default.", max_length=200)
        ] = None,
        agent_id: Annotated[
            str | None,
            Field(description="Which agent learned it; omit for the default.", max_length=200),
        ] = None,
        cube: Cube = None,
    ) -> str:
        """Store something worth remembering long-term. Returns the new memory ids."""
        return await _call(
            backend,
            ctx,
            lambda b: ops.remember(
                b,
                content=content,
                messages=messages,
                tags=tags,
                kind=kind,
                user_id=user_id,
                agent_id=agent_id,
                cube=cube,
            ),
        )

    @server.tool(annotations=write, structured_output=False)
    async def ingest(
        ctx: Context,
        messages: Annotated[
            list[Turn],
            Field(
                description="Conversation turns, oldest first, each {'role': 'user'|'assistant', "
                "'content': '...', 'name': speaker (optional)}.",
                min_length=1,
                max_length=MAX_TURNS,
            ),
        ],
        policy: Annotated[
            PolicyName | None,
            Field(
                description="Who decides what to keep: learned, llm, or store_all (every "
                "turn); omit for the cube's default."
            ),
        ] = None,
        user_id: Annotated[
            str | None, Field(description="Whom it is about; omit for the default.", max_length=200)
        ] = None,
        agent_id: Annotated[
            str | None,
            Field(description="Which agent took part; omit for the default.", max_length=200),
        ] = None,
        cube: Cube = None,
    ) -> str:
        """Hand conversation turns to memory: the service keeps each turn as a source and
        decides what becomes a memory (insert, update, merge, delete or skip). Returns the
        decisions counted by operation and the memories written."""
        return await _call(
            backend,
            ctx,
            lambda b: ops.ingest(
                b, messages=messages, policy=policy, user_id=user_id, agent_id=agent_id, cube=cube
            ),
        )

    @server.tool(annotations=read, structured_output=False)
    async def core(
        ctx: Context,
        user_id: Annotated[
            str | None,
            Field(description="The user; omit for the default.", max_length=200),
        ] = None,
        agent_id: Annotated[
            str | None,
            Field(description="The agent; omit for the default.", max_length=200),
        ] = None,
        cube: Cube = None,
    ) -> str:
        """The core block of a user or agent: a short profile worth keeping in context."""
        return await _call(
            backend, ctx, lambda b: ops.core(b, user_id=user_id, agent_id=agent_id, cube=cube)
        )

    @server.tool(annotations=read, structured_output=False)
    async def recall(
        ctx: Context,
        query: Annotated[
            str,
            Field(
                description="What you want to know, in words (e.g. 'what does Alice eat?').",
                min_length=1,
                max_length=8000,
            ),
        ],
        top_k: Annotated[int, Field(description="How many memories to return.", ge=1, le=50)] = 5,
        tags: Tags = None,
        user_id: Annotated[
            str | None, Field(description="Only memories about this user.", max_length=200)
        ] = None,
        cube: Cube = None,
        now: Now = None,
    ) -> str:
        """Search long-term memory by meaning and keywords: the best matches with id, content,
        when it was stored and why it matched."""
        return await _call(
            backend,
            ctx,
            lambda b: ops.recall(
                b, query=query, top_k=top_k, tags=tags, user_id=user_id, cube=cube, now=now
            ),
        )

    @server.tool(annotations=read, structured_output=False)
    async def ask(
        ctx: Context,
        question: Annotated[
            str,
            Field(
                description="The question, in words (e.g. 'where did Alice move after Lyon?').",
                min_length=1,
                max_length=8000,
            ),
        ],
        top_k: Annotated[
            int, Field(description="How many pieces of evidence to return.", ge=1, le=50)
        ] = 10,
        tags: Tags = None,
        user_id: Annotated[
            str | None, Field(description="Only memories about this user.", max_length=200)
        ] = None,
        cube: Cube = None,
        now: Now = None,
        mode: Annotated[
            AskMode,
            Field(
                description="auto (an LLM answers when the service has one), heuristic "
                "(evidence only, fastest) or llm."
            ),
        ] = "auto",
        max_cycles: Annotated[
            int | None,
            Field(description="Most probe cycles; omit for the default.", ge=0, le=MAX_CYCLES),
        ] = None,
        max_llm_calls: Annotated[
            int | None,
            Field(description="Most LLM calls; omit for the default.", ge=0, le=MAX_LLM_CALLS),
        ] = None,
        max_tokens: Annotated[
            int | None,
            Field(description="Most LLM tokens; omit for the default.", ge=0, le=MAX_TOKENS),
        ] = None,
        deadline_ms: Annotated[
            int | None,
            Field(
                description="Answer within this many milliseconds with the best so far.",
                ge=1,
                le=MAX_DEADLINE_MS,
            ),
        ] = None,
    ) -> str:
        """Answer a question from long-term memory by searching in cycles (probing for what
        is still missing): the answer when the service has an LLM, and the evidence, each
        with id, content, when and why it was chosen."""
        budget = Budget(max_cycles, max_llm_calls, max_tokens, deadline_ms)
        return await _call(
            backend,
            ctx,
            lambda b: ops.ask(
                b,
                question=question,
                top_k=top_k,
                tags=tags,
                user_id=user_id,
                cube=cube,
                now=now,
                mode=mode,
                budget=budget,
            ),
        )

    @server.tool(
        annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=True),
        structured_output=False,
    )
    async def forget(ctx: Context, memory_id: MemoryRef) -> str:
        """Delete a memory that is wrong or no longer wanted (soft: its history is kept)."""
        return await _call(backend, ctx, lambda b: ops.forget(b, memory=memory_id))

    @server.tool(annotations=read, structured_output=False)
    async def history(
        ctx: Context,
        memory_id: MemoryRef,
        limit: Annotated[int, Field(description="Most versions to return.", ge=1, le=100)] = 20,
    ) -> str:
        """How a memory changed: its versions, oldest first, with who changed it and why."""
        return await _call(backend, ctx, lambda b: ops.history(b, memory=memory_id, limit=limit))

    @server.tool(annotations=write, structured_output=False)
    async def link(
        ctx: Context,
        source_id: MemoryRef,
        target_id: MemoryRef,
        relation: Annotated[
            Relation, Field(description="How source relates to target: source <relation> target.")
        ] = "related",
        reason: Annotated[
            str | None, Field(description="Why they are linked, in a sentence.", max_length=2000)
        ] = None,
    ) -> str:
        """Link two memories of the same cube (e.g. a newer fact supersedes an older one)."""
        return await _call(
            backend,
            ctx,
            lambda b: ops.link(
                b, source=source_id, target=target_id, relation=relation, reason=reason
            ),
        )

    @server.tool(annotations=read, structured_output=False)
    async def neighbours(
        ctx: Context,
        memory_id: MemoryRef,
        limit: Annotated[int, Field(description="Most links to follow.", ge=1, le=100)] = 20,
    ) -> str:
        """Memories linked to a memory, with the relation, its direction and the reason."""
        return await _call(backend, ctx, lambda b: ops.neighbours(b, memory=memory_id, limit=limit))

    @server.resource(
        "memsvc://cubes/{cube}/recent",
        name="recent",
        description="The 20 newest memories of a cube (id or name), newest first.",
        mime_type="application/json",
    )
    async def recent_memories(cube: str, ctx: Context) -> str:
        return await _call(backend, ctx, lambda b: ops.recent(b, cube=cube, core=False, limit=20))

    @server.resource(
        "memsvc://cubes/{cube}/core",
        name="core",
        description="The core block of a cube: its core-layer memories (the always-in-context "
        "profile), newest first.",
        mime_type="application/json",
    )
    async def core_block(cube: str, ctx: Context) -> str:
        return await _call(backend, ctx, lambda b: ops.recent(b, cube=cube, core=True, limit=50))

    return server
