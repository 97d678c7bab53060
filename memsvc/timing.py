"""Where a request's time goes, phase by phase: the API sends it as ``Server-Timing``.

``db`` is the time spent in SQL statements (sent, run, answered) and how many there were,
named phases (``embed``: the model runtime) are timed where they run, and ``app`` is the
request's whole time in the service up to its first response byte. What ``app`` has beyond
the named phases is the framework, validation, serialisation, pool checkout, commit and the
event loop. Clients and benchmarks (bench/load.py) read the header to split a latency into
the service's parts and the network's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

__all__ = ["Phases", "current", "phase", "record_statement", "start", "stop"]


class Phases:
    """One request's timed phases (milliseconds) and its count of SQL statements."""

    __slots__ = ("db_ms", "db_n", "ms", "started")

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.ms: dict[str, float] = {}
        self.db_ms = 0.0
        self.db_n = 0

    def header(self) -> bytes:
        """The ``Server-Timing`` value, with ``app`` measured up to now."""
        total = (time.perf_counter() - self.started) * 1000
        parts = [f'db;dur={self.db_ms:.2f};desc="{self.db_n} statements"']
        parts += [f"{name};dur={ms:.2f}" for name, ms in self.ms.items()]
        parts.append(f"app;dur={total:.2f}")
        return ", ".join(parts).encode()


_current: ContextVar[Phases | None] = ContextVar("memsvc_phases", default=None)


def start() -> tuple[Phases, Token[Phases | None]]:
    """Begin timing a request in this context."""
    phases = Phases()
    return phases, _current.set(phases)


def stop(token: Token[Phases | None]) -> None:
    _current.reset(token)


def current() -> Phases | None:
    """The phases of the request being served here, if one is being timed."""
    return _current.get()


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Time a block as phase ``name`` of the current request (free outside one)."""
    phases = _current.get()
    if phases is None:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        phases.ms[name] = phases.ms.get(name, 0.0) + (time.perf_counter() - started) * 1000


def record_statement(ms: float) -> None:
    """Add one SQL statement's time to the current request's ``db`` phase."""
    phases = _current.get()
    if phases is not None:
        phases.db_ms += ms
        phases.db_n += 1
