"""The rebase rule on its own (fast): which versions an edit may go over, which refuse it."""

from __future__ import annotations

import pytest

from memsvc.errors import Conflict
from memsvc.schemas import MemoryUpdate
from memsvc.store.edits import COMPARED, Step, edited_fields, rebase_over


def step(version: int, kind: str, *changed: str) -> Step:
    return Step(version=version, change_kind=kind, changed=frozenset(changed))


def refused(history: list[Step], expected: int, current: int, *fields: str) -> Conflict:
    with pytest.raises(Conflict) as err:
        rebase_over(history, expected=expected, current=current, fields=frozenset(fields))
    assert err.value.code == "version_conflict"
    return err.value


def test_system_versions_of_other_fields_are_gone_over() -> None:
    history = [step(2, "enrich", "keywords", "tags", "context"), step(3, "evolve", "valid_to")]
    assert rebase_over(history, expected=1, current=3, fields=frozenset({"content"})) == [2, 3]
    assert rebase_over([], expected=3, current=3, fields=frozenset({"tags"})) == []


def test_evolution_rewriting_the_field_the_edit_sets_is_a_conflict() -> None:
    history = [step(2, "enrich", "keywords"), step(3, "evolve", "context", "tags")]
    err = refused(history, 1, 3, "context", "content")
    assert err.message == (
        "memory is at version 3, not 1: version 3 (evolve) changed context, which this edit sets"
    )
    assert err.detail == {
        "expected_version": 1,
        "current_version": 3,
        "conflicting_version": 3,
        "change_kind": "evolve",
        "fields": ["context"],
    }


def test_any_version_not_by_the_system_is_a_conflict() -> None:
    history = [step(2, "enrich", "tags"), step(3, "update", "importance"), step(4, "enrich")]
    err = refused(history, 1, 4, "content")
    assert err.message == "memory is at version 4, not 1: version 3 (update) changed importance"
    assert err.detail["conflicting_version"] == 3 and err.detail["fields"] == ["importance"]
    # A version that changed nothing is still another writer's.
    err = refused([step(2, "update")], 1, 2, "content")
    assert err.message == "memory is at version 2, not 1: version 2 (update) was written since"
    for kind in ("create", "delete", "restore", "erase", "import"):
        refused([step(2, kind, "status")], 1, 2, "content")


def test_expected_versions_the_memory_never_had_are_conflicts() -> None:
    err = refused([], 9, 4, "content")
    assert (err.message, err.detail) == (
        "memory is at version 4, not 9",
        {"expected_version": 9, "current_version": 4},
    )
    # A gap in the history (never written, or unreadable) is not gone over either.
    refused([step(3, "enrich", "tags")], 1, 3, "content")


def test_every_field_an_edit_can_set_is_compared() -> None:
    settable = set(MemoryUpdate.model_fields) - {"expected_version", "reason"}
    assert settable <= set(COMPARED)
    edit = MemoryUpdate(expected_version=1, content="x", user_id=None)
    assert edited_fields(edit) == {"content", "user_id"}
