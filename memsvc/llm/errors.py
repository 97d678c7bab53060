"""LLM errors, part of the memsvc error tree (``MemsvcError``)::

    LLMError                502  an LLM call did not give a usable answer
    ├── LLMUnavailable      503  the provider failed (network, 5xx, rate limit, timeout)
    │   └── LLMCircuitOpen  503  skipped: the provider failed too often just now
    ├── LLMOutputInvalid    502  the output stayed invalid after the one repair call
    └── LLMBudgetExceeded   429  the tenant's hourly LLM budget (calls/tokens) is spent

Enrichment never fails for these: it uses the heuristic result and records the fallback
with the error's ``why`` (``invalid_llm_output``, ``llm_unavailable``,
``llm_circuit_open``, ``llm_budget``) on the version and in the job result.
"""

from __future__ import annotations

from typing import ClassVar

from memsvc.errors import MemsvcError


class LLMError(MemsvcError):
    status = 502
    code = "llm_error"
    why: ClassVar[str] = "llm_error"


class LLMUnavailable(LLMError):
    status = 503
    code = "llm_unavailable"
    why = "llm_unavailable"


class LLMCircuitOpen(LLMUnavailable):
    code = "llm_circuit_open"
    why = "llm_circuit_open"


class LLMOutputInvalid(LLMError):
    status = 502
    code = "llm_invalid_output"
    why = "invalid_llm_output"


class LLMBudgetExceeded(LLMError):
    status = 429
    code = "llm_budget_exceeded"
    why = "llm_budget"
