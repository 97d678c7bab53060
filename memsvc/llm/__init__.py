"""LLM access through litellm, with prompts as versioned files in ``prompts/``.

With no model configured (``settings.llm.model`` unset) nothing here is used and every
feature runs in its documented heuristic mode.
"""

from memsvc.llm.client import LLM, Breaker, Budget, LiteLLM, Usage, build_llm
from memsvc.llm.errors import (
    LLMBudgetExceeded,
    LLMCircuitOpen,
    LLMError,
    LLMOutputInvalid,
    LLMUnavailable,
)
from memsvc.llm.prompts import PROMPTS_DIR, REGISTRY, Prompt, render

__all__ = [
    "LLM",
    "PROMPTS_DIR",
    "REGISTRY",
    "Breaker",
    "Budget",
    "LLMBudgetExceeded",
    "LLMCircuitOpen",
    "LLMError",
    "LLMOutputInvalid",
    "LLMUnavailable",
    "LiteLLM",
    "Prompt",
    "Usage",
    "build_llm",
    "render",
]
