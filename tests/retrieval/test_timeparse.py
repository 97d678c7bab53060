"""The date/period parser behind the time channel (pure, no database)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from memsvc.retrieval.timeparse import parse_periods

NOW = datetime(2024, 3, 15, 12, tzinfo=UTC)


def spans(query: str) -> list[tuple[date | None, date | None, int | None]]:
    return [
        (p.start.date() if p.start else None, p.end.date() if p.end else None, p.month)
        for p in parse_periods(query, now=NOW)
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("What did Caroline do in May 2023?", [(date(2023, 5, 1), date(2023, 6, 1), None)]),
        ("last week of June 2023", [(date(2023, 6, 24), date(2023, 7, 1), None)]),
        ("first week of Sept 2022", [(date(2022, 9, 1), date(2022, 9, 8), None)]),
        ("early July 2023", [(date(2023, 7, 1), date(2023, 7, 11), None)]),
        ("late February 2024", [(date(2024, 2, 20), date(2024, 3, 1), None)]),
        ("What happened in 2022?", [(date(2022, 1, 1), date(2023, 1, 1), None)]),
        ("on 8 May, 2023", [(date(2023, 5, 8), date(2023, 5, 9), None)]),
        ("May 8th, 2023", [(date(2023, 5, 8), date(2023, 5, 9), None)]),
        ("2023-05-08", [(date(2023, 5, 8), date(2023, 5, 9), None)]),
        ("what did Mel paint in June?", [(None, None, 6)]),
        ("yesterday", [(date(2024, 3, 14), date(2024, 3, 15), None)]),
        ("what did we discuss last week", [(date(2024, 3, 4), date(2024, 3, 11), None)]),
        ("last month", [(date(2024, 2, 1), date(2024, 3, 1), None)]),
        ("what did I do last Saturday?", [(date(2024, 3, 9), date(2024, 3, 10), None)]),
        ("the call on Friday", [(date(2024, 3, 8), date(2024, 3, 9), None)]),
        ("two weeks ago", [(date(2024, 2, 26), date(2024, 3, 5), None)]),
        ("I moved 3 days ago", [(date(2024, 3, 11), date(2024, 3, 14), None)]),
        ("a couple of months ago", [(date(2023, 12, 25), date(2024, 2, 8), None)]),
        ("a few years ago", [(date(2021, 1, 1), date(2022, 1, 1), None)]),
        ("What may help with sleep?", []),
        ("How are you?", []),
    ],
)
def test_periods(query: str, expected: list[tuple[date | None, date | None, int | None]]) -> None:
    assert spans(query) == expected


def test_two_periods_in_one_query() -> None:
    assert spans("between March 2023 and 2021") == [
        (date(2023, 3, 1), date(2023, 4, 1), None),
        (date(2021, 1, 1), date(2022, 1, 1), None),
    ]


def test_invalid_day_is_not_a_date() -> None:
    assert spans("31 February 2023") == [(None, None, 2)]
