"""Fixtures of the SDK tests: a sync client on a fake server; no database, no app."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from memsvc.sdk import MemoryClient

from .fakes import FakeServer


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


@pytest.fixture
def client(server: FakeServer) -> Iterator[MemoryClient]:
    transport = httpx.MockTransport(server)
    with MemoryClient("http://memsvc.test/base", "sk-test", transport=transport, backoff=0) as c:
        yield c
