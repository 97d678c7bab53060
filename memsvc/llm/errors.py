"""LLM errors, part of the memsvc error tree (``MemsvcError``)::

    LLMError                502  an LLM call did not give a usable answer
    ├── LLMUnavailable      503  the provider failed (network, auth, rate limit, timeout)
    └── LLMOutputInvalid    502  the output stayed invalid after every retry

A job whose LLM call raises one of these fails, is retried with backoff and is finally
parked as a dead letter with the error; nothing is dropped.
"""

from __future__ import annotations

from memsvc.errors import MemsvcError


class LLMError(MemsvcError):
    status = 502
    code = "llm_error"


class LLMUnavailable(LLMError):
    status = 503
    code = "llm_unavailable"


class LLMOutputInvalid(LLMError):
    status = 502
    code = "llm_invalid_output"
