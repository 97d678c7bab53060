"""A scripted LLM registered as a litellm custom provider: the real wrapper, no network.

Tests and benchmarks use it to drive LLM mode deterministically: every call goes through
``litellm.acompletion`` exactly as with a real provider, and the script decides the reply.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from litellm.llms.custom_llm import CustomLLM

from memsvc.llm.client import import_litellm

litellm = import_litellm()

# A script sees the chat messages and returns the reply text, or :data:`HANG` (the call
# never answers), or raises (e.g. :func:`server_error`: the provider failed).
Script = Callable[[list[dict[str, Any]]], str]

HANG = "\x00memsvc-fake:hang"
# A reply starting with this, followed by a JSON list of OpenAI ``tool_calls``, answers
# with those function calls and no text (as a model served with tool calling does).
TOOL_CALLS = "\x00memsvc-fake:tool_calls:"


def server_error(status: int = 503) -> Exception:
    """A provider failure as litellm raises it (5xx by default)."""
    if status == 429:
        return litellm.RateLimitError("rate limited", llm_provider="fake", model="scripted")  # type: ignore[no-any-return]
    return litellm.InternalServerError(  # type: ignore[no-any-return]
        f"upstream answered {status}", llm_provider="fake", model="scripted"
    )


@dataclass
class Call:
    model: str
    messages: list[dict[str, Any]]
    reply: str


class ScriptedLLM(CustomLLM):
    """Answers each completion with ``script(messages)``; tokens counted as words.

    ``calls`` holds every call the provider received, answered or not."""

    def __init__(self, script: Script) -> None:
        super().__init__()
        self.script = script
        self.calls: list[Call] = []

    async def acompletion(self, model: str, messages: list[Any], *args: Any, **kwargs: Any) -> Any:
        msgs = [dict(m) for m in messages]
        try:
            reply = self.script(msgs)
        except Exception as exc:
            self.calls.append(Call(model=model, messages=msgs, reply=f"<{type(exc).__name__}>"))
            raise
        self.calls.append(Call(model=model, messages=msgs, reply=reply))
        if reply == HANG:
            await asyncio.sleep(3600)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in msgs)
        completion_tokens = len(reply.split())
        message: dict[str, Any] = {"role": "assistant", "content": reply}
        if reply.startswith(TOOL_CALLS):
            calls = json.loads(reply[len(TOOL_CALLS) :])
            message = {"role": "assistant", "content": None, "tool_calls": calls}
        return litellm.ModelResponse(
            model=model,
            choices=[{"message": message}],
            usage={
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        )


@dataclass
class Registered:
    """The handler and the model name that routes to it (``<provider>/<name>``)."""

    handler: ScriptedLLM
    model: str
    previous: list[Any] = field(default_factory=list)


@contextmanager
def registered(script: Script, *, provider: str = "memsvc-fake") -> Iterator[Registered]:
    """Register a :class:`ScriptedLLM` under ``provider`` for the duration of the block."""
    handler = ScriptedLLM(script)
    previous = list(litellm.custom_provider_map)
    litellm.custom_provider_map = [
        *(p for p in previous if p["provider"] != provider),
        {"provider": provider, "custom_handler": handler},
    ]
    try:
        yield Registered(handler=handler, model=f"{provider}/scripted", previous=previous)
    finally:
        litellm.custom_provider_map = previous
