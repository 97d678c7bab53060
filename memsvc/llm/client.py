"""The LLM wrapper: litellm to any provider, a rendered prompt in, a validated model out.

It never hands back a raw dict: ``run`` returns the prompt's response model or raises an
:class:`~memsvc.llm.errors.LLMError`. What a call may cost is bounded:

- **invalid output** (not JSON, or failing the schema or the caller's check) gets exactly
  one repair call (``prompts/repair_json.v1``: the schema, the invalid reply, "JSON
  only"), then :class:`LLMOutputInvalid`, so at most 2 calls per task;
- **provider failures** (timeouts, 5xx, rate limits, connection errors) are tried again
  within the call after exponential backoff with full jitter, ``provider_retries`` times
  at most, then :class:`LLMUnavailable`; other provider errors (auth, bad request) are
  not retried;
- a **circuit breaker** per process (one per :class:`LiteLLM`): after
  ``breaker_failures`` consecutive provider failures no call is made for
  ``breaker_cooldown_s`` (:class:`LLMCircuitOpen`), then one is let through to probe;
- a **budget** (``Usage.budget``, per tenant and hour, counted in Postgres) is checked
  before every call (:class:`LLMBudgetExceeded`).

Calls and tokens are counted in Prometheus and in the caller's :class:`Usage` (one per job).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from prometheus_client import Counter
from pydantic import BaseModel, ValidationError

from memsvc.config import LLMSettings
from memsvc.llm.errors import LLMBudgetExceeded, LLMCircuitOpen, LLMOutputInvalid, LLMUnavailable
from memsvc.llm.prompts import PROMPTS_DIR, Prompt, render, render_repair

C = TypeVar("C", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)

# outcome: ok | invalid | error (provider failure) | skipped (breaker open) | budget
LLM_CALLS = Counter("memsvc_llm_calls_total", "LLM calls", ["task", "outcome"])
LLM_TOKENS = Counter("memsvc_llm_tokens_total", "LLM tokens", ["task", "direction"])

SYSTEM = (
    "You are a careful assistant inside a memory service. Reply with exactly one JSON "
    "object that follows the requested schema; no prose, no code fences."
)


class Budget(Protocol):
    """An LLM budget (``memsvc.store.llm_usage.TenantBudget``): asked before each call."""

    async def reserve(self) -> bool:
        """Count one call; False (and nothing counted) when the budget is spent."""
        ...

    async def spend(self, tokens: int) -> None:
        """Count the tokens a call used."""
        ...


@dataclass
class Usage:
    """LLM work done on behalf of one job (or one request), and the budget it draws on."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    invalid_outputs: int = 0
    provider_errors: int = 0
    by_task: dict[str, int] = field(default_factory=dict)
    budget: Budget | None = field(default=None, repr=False, compare=False)

    def record(self, task: str, prompt_tokens: int, completion_tokens: int) -> None:
        self.calls += 1
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.by_task[task] = self.by_task.get(task, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        """JSON form, stored in ``job.result``."""
        return {
            "llm_calls": self.calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "invalid_outputs": self.invalid_outputs,
            "provider_errors": self.provider_errors,
            "llm_calls_by_task": dict(self.by_task),
        }


Check = Callable[[R], None]


class LLM(Protocol):
    """Anything that turns a prompt and its context into the prompt's response model."""

    model: str

    async def run(
        self,
        prompt: Prompt[C, R],
        context: C,
        *,
        usage: Usage | None = None,
        check: Callable[[R], None] | None = None,
    ) -> R: ...


def import_litellm() -> Any:
    """``litellm``, imported on first use: the import takes seconds.

    Its pydantic types emit ``UserWarning: ... using the `ReadOnly` qualifier`` while
    building schemas (harmless, not ours); pyproject filters exactly that in tests.
    """
    import litellm

    return litellm


_TRANSIENT_NAMES = (
    "Timeout",
    "RateLimit",
    "ServiceUnavailable",
    "InternalServerError",
    "APIConnectionError",
    "BadGateway",
)


def is_transient(exc: BaseException) -> bool:
    """Whether a provider error is worth another try (timeouts, 408/429/5xx, connection)."""
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status in (408, 409, 429) or status >= 500
    return any(n in type(exc).__name__ for n in _TRANSIENT_NAMES)


def reply_text(message: Any) -> str:
    """The reply's text; function calls (``tool_calls``) as ``{"tool_calls": [...]}`` JSON.

    Models served with tool calling (a Mem-alpha checkpoint behind vLLM) answer in
    ``tool_calls`` and leave ``content`` empty; the prompt's response model parses them.
    """
    calls = getattr(message, "tool_calls", None) or []
    if not calls:
        return str(getattr(message, "content", None) or "")
    return json.dumps(
        {
            "tool_calls": [
                {
                    "type": "function",
                    "function": {"name": c.function.name, "arguments": c.function.arguments},
                }
                for c in calls
            ]
        }
    )


class Breaker:
    """Consecutive provider failures open it for ``cooldown_s``; a success closes it."""

    def __init__(self, failures: int, cooldown_s: float) -> None:
        self.failures = failures
        self.cooldown_s = cooldown_s
        self.consecutive = 0
        self.open_until = 0.0
        self.opened = 0  # times it opened (tests, bench)

    def allow(self) -> bool:
        return time.monotonic() >= self.open_until

    def success(self) -> None:
        self.consecutive = 0
        self.open_until = 0.0

    def failure(self) -> None:
        self.consecutive += 1
        if self.failures > 0 and self.consecutive >= self.failures:
            if self.allow():
                self.opened += 1
            self.open_until = time.monotonic() + self.cooldown_s


class LiteLLM:
    """:class:`LLM` over ``litellm.acompletion`` (model, key, base URL, timeout from settings)."""

    def __init__(self, settings: LLMSettings, *, prompts_dir: Any = PROMPTS_DIR) -> None:
        if not settings.model:
            raise ValueError("LiteLLM needs settings.llm.model")
        self.model: str = settings.model
        self.settings = settings
        self.prompts_dir = prompts_dir
        self.breaker = Breaker(settings.breaker_failures, settings.breaker_cooldown_s)

    async def _attempt(self, messages: list[dict[str, str]]) -> Any:
        litellm = import_litellm()
        s = self.settings
        # Our own deadline too: not every provider path honours ``timeout``.
        return await asyncio.wait_for(
            litellm.acompletion(
                model=self.model,
                messages=messages,
                api_key=s.api_key.get_secret_value() if s.api_key else None,
                api_base=s.api_base,
                timeout=s.timeout_s,
                temperature=0,
                response_format={"type": "json_object"},
                drop_params=True,
                # Retries are ours (backoff, breaker, budget), not the provider SDK's.
                max_retries=0,
            ),
            timeout=s.timeout_s,
        )

    def _delay(self, n: int) -> float:
        s = self.settings
        return random.uniform(0, min(s.backoff_max_s, s.backoff_base_s * 2**n))

    async def _complete(
        self, task: str, messages: list[dict[str, str]], usage: Usage
    ) -> tuple[str, int, int]:
        """One call's text and tokens, with backoff on transient provider failures."""
        s = self.settings
        tries = 1 + max(s.provider_retries, 0)
        for n in range(tries):
            if not self.breaker.allow():
                LLM_CALLS.labels(task, "skipped").inc()
                raise LLMCircuitOpen(
                    f"LLM call for {task} skipped: the provider failed "
                    f"{self.breaker.consecutive} times in a row",
                    detail={"task": task, "model": self.model},
                )
            if usage.budget is not None and not await usage.budget.reserve():
                LLM_CALLS.labels(task, "budget").inc()
                raise LLMBudgetExceeded(
                    f"LLM call for {task} skipped: the tenant's hourly LLM budget is spent",
                    detail={"task": task, "model": self.model},
                )
            try:
                resp = await self._attempt(messages)
            except Exception as exc:
                # Boundary to a third-party client that raises many unrelated types.
                LLM_CALLS.labels(task, "error").inc()
                usage.provider_errors += 1
                self.breaker.failure()
                if not is_transient(exc) or n == tries - 1:
                    raise LLMUnavailable(
                        f"LLM call for {task} failed: {type(exc).__name__}",
                        detail={"task": task, "model": self.model, "tries": n + 1},
                    ) from exc
                await asyncio.sleep(self._delay(n))
                continue
            self.breaker.success()
            content = reply_text(resp.choices[0].message)
            u = getattr(resp, "usage", None)
            pt = int(getattr(u, "prompt_tokens", 0) or 0)
            ct = int(getattr(u, "completion_tokens", 0) or 0)
            LLM_TOKENS.labels(task, "prompt").inc(pt)
            LLM_TOKENS.labels(task, "completion").inc(ct)
            usage.record(task, pt, ct)
            if usage.budget is not None:
                await usage.budget.spend(pt + ct)
            return str(content), pt, ct
        raise AssertionError("unreachable")  # pragma: no cover

    async def run(
        self,
        prompt: Prompt[C, R],
        context: C,
        *,
        usage: Usage | None = None,
        check: Callable[[R], None] | None = None,
    ) -> R:
        """The validated response; invalid output gets one repair call, then is raised."""
        usage = usage if usage is not None else Usage()
        messages = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": render(prompt, context, directory=self.prompts_dir)},
        ]
        errors: list[str] = []
        repairs = min(max(self.settings.max_retries, 0), 1)
        for _ in range(1 + repairs):
            raw, _pt, _ct = await self._complete(prompt.id, messages, usage)
            try:
                parsed = prompt.parse(raw)
                if check is not None:
                    check(parsed)
            except (ValidationError, ValueError) as exc:
                usage.invalid_outputs += 1
                LLM_CALLS.labels(prompt.id, "invalid").inc()
                err = str(exc)[:800]
                errors.append(err)
                repair = render_repair(prompt, raw, err, directory=self.prompts_dir)
                messages = [
                    *messages,
                    {"role": "assistant", "content": raw[:4000]},
                    {"role": "user", "content": repair},
                ]
                continue
            LLM_CALLS.labels(prompt.id, "ok").inc()
            return parsed
        raise LLMOutputInvalid(
            f"{prompt.id}: output still invalid after {len(errors)} tries",
            detail={"prompt": prompt.id, "model": self.model, "errors": errors},
        )


def build_llm(settings: LLMSettings) -> LLM | None:
    """The configured LLM, or None for heuristic mode."""
    return LiteLLM(settings) if settings.model else None
