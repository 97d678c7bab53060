"""The SDK's memory filters name exactly the server's filter schema, so they cannot drift."""

from __future__ import annotations

from memsvc.schemas import MemoryFilters, MemoryListQuery
from memsvc.sdk import _types


def test_sdk_filters_are_the_server_schema_fields() -> None:
    sdk = _types.MemoryFilters.__required_keys__ | _types.MemoryFilters.__optional_keys__
    assert sdk == set(MemoryFilters.model_fields)


def test_the_list_query_is_the_filters_and_a_page() -> None:
    extra = set(MemoryListQuery.model_fields) - set(MemoryFilters.model_fields)
    assert extra == {"cursor", "limit"}
