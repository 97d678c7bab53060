"""The question aspects ask reasons with: extraction, coverage, probes, greedy selection."""

from __future__ import annotations

from datetime import UTC, datetime

from memsvc.retrieval import aspects

NOW = datetime(2023, 6, 15, tzinfo=UTC)


def test_a_questions_names_words_and_periods() -> None:
    a = aspects.of_question("When did Caroline go to the LGBTQ support group in May 2023?", NOW)
    assert a.names == {"caroline", "lgbtq"}  # "May" is the period's, not a name
    assert a.words == {"go", "support", "group"}  # no question words, no "2023"
    assert a.labels == [
        "name:caroline", "name:lgbtq", "word:go", "word:group", "word:support", "time:May 2023"
    ]  # fmt: skip
    b = aspects.of_question("What was Caroline painting two weeks ago?", NOW)
    assert (b.names, b.words, [p.text for p in b.periods]) == (
        {"caroline"},
        {"paint"},
        ["two weeks ago"],
    )


def test_coverage_reads_index_text_and_time() -> None:
    a = aspects.of_question("What did Caroline paint in May 2023 at the lake?", NOW)
    may = datetime(2023, 5, 3, tzinfo=UTC)
    got = aspects.coverage(a, "Caroline: I painted a sunrise", may)
    assert got == {"name:caroline", "word:paint", "time:May 2023"}
    assert not any(
        label.startswith("time:")
        for label in aspects.coverage(a, "Caroline painted", datetime(2023, 1, 3, tzinfo=UTC))
    )
    assert aspects.missing(a, [got]) == [x for x in a.labels if x not in got]


def test_probes_go_after_what_is_missing() -> None:
    a = aspects.of_question("Which adoption agency did Caroline choose in Lisbon?", NOW)
    gaps = ["name:lisbon", "word:agency"]
    got = aspects.probes(a, "Which adoption agency did Caroline choose in Lisbon?", gaps, [
        "Melanie told Caroline about Hope House"
    ])  # fmt: skip
    assert got == [
        "caroline lisbon agency",  # the names and the uncovered words
        "hope house adoption agency choose",  # names the evidence brings
        "adoption agency choose",  # the words without the names
    ]
    assert aspects.probes(aspects.of_question("hi", NOW), "hi", [], []) == []


def test_selection_prefers_new_coverage_over_repeats() -> None:
    ranked = [
        ("a", 1.0, frozenset({"name:x", "word:y"})),
        ("b", 0.9, frozenset({"name:x", "word:y"})),
        ("c", 0.7, frozenset({"word:z"})),
    ]
    picks = aspects.select(ranked, 2, weight=1.0, total=3)
    assert [p[0] for p in picks] == ["a", "c"]
    assert picks[1][2] == ["word:z"]
    assert [p[0] for p in aspects.select(ranked, 3, weight=0.0, total=3)] == ["a", "b", "c"]
