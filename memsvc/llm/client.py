"""The LLM wrapper: litellm to any provider, a rendered prompt in, a validated model out.

It never hands back a raw dict: ``run`` returns the prompt's response model or raises
:class:`LLMOutputInvalid` (still invalid after ``settings.llm.max_retries`` retries, each
told what was wrong) or :class:`LLMUnavailable` (the provider failed). Calls and tokens
are counted in Prometheus and in the caller's :class:`Usage` (one per job).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from prometheus_client import Counter
from pydantic import BaseModel, ValidationError

from memsvc.config import LLMSettings
from memsvc.llm.errors import LLMOutputInvalid, LLMUnavailable
from memsvc.llm.prompts import PROMPTS_DIR, Prompt, render

C = TypeVar("C", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)

LLM_CALLS = Counter("memsvc_llm_calls_total", "LLM calls", ["task", "outcome"])
LLM_TOKENS = Counter("memsvc_llm_tokens_total", "LLM tokens", ["task", "direction"])

SYSTEM = (
    "You are a careful assistant inside a memory service. Reply with exactly one JSON "
    "object that follows the requested schema; no prose, no code fences."
)


@dataclass
class Usage:
    """LLM work done on behalf of one job (or one request)."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    invalid_outputs: int = 0
    by_task: dict[str, int] = field(default_factory=dict)

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


class LiteLLM:
    """:class:`LLM` over ``litellm.acompletion`` (model, key, base URL, timeout from settings)."""

    def __init__(self, settings: LLMSettings, *, prompts_dir: Any = PROMPTS_DIR) -> None:
        if not settings.model:
            raise ValueError("LiteLLM needs settings.llm.model")
        self.model: str = settings.model
        self.settings = settings
        self.prompts_dir = prompts_dir

    async def _complete(self, task: str, messages: list[dict[str, str]]) -> tuple[str, int, int]:
        litellm = import_litellm()
        s = self.settings
        try:
            resp: Any = await litellm.acompletion(
                model=self.model,
                messages=messages,
                api_key=s.api_key.get_secret_value() if s.api_key else None,
                api_base=s.api_base,
                timeout=s.timeout_s,
                temperature=0,
                response_format={"type": "json_object"},
                drop_params=True,
            )
        except Exception as exc:
            # Boundary to a third-party client that raises many unrelated types.
            LLM_CALLS.labels(task, "error").inc()
            raise LLMUnavailable(
                f"LLM call for {task} failed: {type(exc).__name__}: {exc}",
                detail={"task": task, "model": self.model},
            ) from exc
        content = resp.choices[0].message.content or ""
        u = getattr(resp, "usage", None)
        pt = int(getattr(u, "prompt_tokens", 0) or 0)
        ct = int(getattr(u, "completion_tokens", 0) or 0)
        LLM_TOKENS.labels(task, "prompt").inc(pt)
        LLM_TOKENS.labels(task, "completion").inc(ct)
        return str(content), pt, ct

    async def run(
        self,
        prompt: Prompt[C, R],
        context: C,
        *,
        usage: Usage | None = None,
        check: Callable[[R], None] | None = None,
    ) -> R:
        """The validated response; invalid output is retried with the error, then raised."""
        usage = usage if usage is not None else Usage()
        messages = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": render(prompt, context, directory=self.prompts_dir)},
        ]
        errors: list[str] = []
        for _ in range(1 + max(self.settings.max_retries, 0)):
            raw, pt, ct = await self._complete(prompt.id, messages)
            usage.record(prompt.id, pt, ct)
            try:
                parsed = prompt.parse(raw)
                if check is not None:
                    check(parsed)
            except (ValidationError, ValueError) as exc:
                usage.invalid_outputs += 1
                LLM_CALLS.labels(prompt.id, "invalid").inc()
                err = str(exc)[:800]
                errors.append(err)
                messages = [
                    *messages,
                    {"role": "assistant", "content": raw[:4000]},
                    {
                        "role": "user",
                        "content": f"That reply was invalid: {err}\n"
                        "Answer again with only the JSON object, following the schema.",
                    },
                ]
                continue
            LLM_CALLS.labels(prompt.id, "ok").inc()
            return parsed
        raise LLMOutputInvalid(
            f"{prompt.id}: output still invalid after {len(errors)} tries: {errors[-1]}",
            detail={"prompt": prompt.id, "model": self.model, "errors": errors},
        )


def build_llm(settings: LLMSettings) -> LLM | None:
    """The configured LLM, or None for heuristic mode."""
    return LiteLLM(settings) if settings.model else None
