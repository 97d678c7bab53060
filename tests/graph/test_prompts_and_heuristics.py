"""Every prompt file renders with its typed context; parsing; heuristic extraction."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from jinja2 import UndefinedError
from pydantic import ValidationError

import memsvc.graph.prompts as gp
import memsvc.policy.llm_policy as lp
import memsvc.retrieval.ask_prompts as ap
from memsvc.graph import heuristics
from memsvc.llm import PROMPTS_DIR, REGISTRY, render
from memsvc.llm.prompts import render_repair


def test_every_prompt_file_has_a_spec_and_renders() -> None:
    files = sorted(p.name for p in PROMPTS_DIR.glob("*.md.j2"))
    assert {
        "enrich_note.v1.md.j2",
        "link_decide.v1.md.j2",
        "ask_answer.v1.md.j2",
        "summarise_window.v1.md.j2",
        "ingest_decide.v1.md.j2",
    } <= set(files)
    # Every file but the repair prompt has a typed spec, and every spec a file.
    assert sorted(p.filename for p in REGISTRY.values()) == [
        f for f in files if f != "repair_json.v1.md.j2"
    ]
    for prompt in REGISTRY.values():
        text = render(prompt, prompt.example)
        assert "{{" not in text and "{%" not in text
        assert prompt.example.model_dump()  # a typed context
        for field in prompt.response.model_fields:
            assert f'"{field}"' in text  # the prompt names every response key
    assert "Caroline lives in Berlin." in render(gp.LINK_DECIDE, gp.LINK_DECIDE.example)
    assert "[2] (7 May 2023)" in render(ap.ASK_ANSWER, ap.ASK_ANSWER.example)
    assert "[m1] semantic/fact (2023-01-10)" in render(lp.INGEST_DECIDE, lp.INGEST_DECIDE.example)
    window = render(gp.SUMMARISE_WINDOW, gp.SUMMARISE_WINDOW.example)
    assert "[1] (8 May 2023) Caroline: I adopted a golden retriever, Max!" in window
    repair = render_repair(gp.ENRICH_NOTE, "Sure! tea", "the reply contains no JSON object")
    assert "{{" not in repair and '"keywords"' in repair and "Sure! tea" in repair


def test_rendering_is_strict() -> None:
    with pytest.raises(TypeError):
        render(gp.ENRICH_NOTE, gp.LINK_DECIDE.example)  # type: ignore[arg-type]
    broken = gp.ENRICH_NOTE.example.model_copy()
    object.__delattr__(broken, "kind")
    with pytest.raises((UndefinedError, KeyError, AttributeError)):
        render(gp.ENRICH_NOTE, broken)


def test_parse_accepts_fenced_json_and_rejects_bad_output() -> None:
    ok = gp.ENRICH_NOTE.parse(
        '```json\n{"keywords": [" Max ", "Max"], "tags": ["Pets"], "context": "a\\nb"}\n```'
    )
    assert (ok.keywords, ok.tags, ok.context) == (["Max"], ["pets"], "a b")
    with pytest.raises(ValueError, match="no JSON object"):
        gp.ENRICH_NOTE.parse("I think the keywords are Max")
    with pytest.raises(ValidationError):
        gp.ENRICH_NOTE.parse('{"keywords": [], "tags": []}')
    resp = gp.LINK_DECIDE.parse(
        '{"links": [{"candidate": 3, "relation": "supports", "weight": 0.5, "reason": "r"}]}'
    )
    with pytest.raises(ValueError, match=r"candidate numbers \[3\] were not shown"):
        gp.check_link_decisions(2)(resp)
    with pytest.raises(ValidationError):
        gp.LINK_DECIDE.parse(
            '{"links": [{"candidate": 1, "relation": "likes", "weight": 0.5, "reason": "r"}]}'
        )


def test_heuristic_note() -> None:
    text = "Caroline adopted a golden retriever named Max. Hey, Max loves the Golden Gate Bridge!"
    ents = heuristics.entities(text)
    assert ents == ["Caroline", "Max", "Golden Gate Bridge"]
    assert heuristics.keywords(text)[:4] == ["caroline", "max", "golden gate bridge", "adopted"]
    assert heuristics.entities("Hey Mel! Good to see you.") == ["Mel"]
    assert heuristics.tags(["pets"], ents) == ["pets", "caroline", "max", "golden gate bridge"]
    line = heuristics.context_line(
        kind="fact",
        keywords=heuristics.keywords(text),
        entities=ents,
        speakers=["Melanie"],
        occurred_at=datetime(2023, 5, 8, tzinfo=UTC),
    )
    assert line == (
        "Mentions Caroline, Max, Golden Gate Bridge; about adopted, retriever, loves. "
        "Fact by Melanie on 8 May 2023."
    )


def test_names_skip_sentence_openers_that_are_not_names() -> None:
    from memsvc.graph import heuristics

    text = "Painting is fun. Finally Melanie went to New York in March with Pixel."
    assert heuristics.names(text) == ["melanie", "new york", "pixel"]
    assert heuristics.names("Pixel sleeps on Caroline's keyboard.") == ["pixel", "caroline"]


def test_rare_names_weigh_more_and_common_names_are_not_enough() -> None:
    from memsvc.graph import linking

    assert linking.rarity(2, 1000) > linking.rarity(200, 1000)
    assert linking.common_name(200, 1000) and not linking.common_name(6, 12)
    assert linking.rare_term(2, 500) and not linking.rare_term(50, 500)


def test_extractive_summary_keeps_the_heaviest_sentences_in_time_order() -> None:
    import uuid

    from memsvc.graph.summarise import CAP_CHARS, extractive
    from memsvc.store.summaries import Member

    def member(i: int, text: str, who: str) -> Member:
        at = datetime(2023, 5, 8 + i // 20, 10, i % 60, tzinfo=UTC)
        return Member(uuid.uuid4(), 1, text, [who], at, at, None, None, "s")

    filler = [member(i, "ok, sounds good to me really.", "Bob") for i in range(30)]
    heavy = member(31, "Caroline flew to Lisbon on 3 May 2023 with Max.", "Ann")
    early = member(0, "Melanie paid 40 euros in June.", "Melanie")
    text = extractive([early, *filler, heavy])
    lines = text.splitlines()
    assert lines[0] == "Ann, Bob, Melanie; 8 May 2023 to 9 May 2023:"
    # Both heavy sentences, in time order around the filler (kept up to half the cap).
    assert lines[1] == "Melanie: Melanie paid 40 euros in June."
    assert lines[-1] == "Ann: Caroline flew to Lisbon on 3 May 2023 with Max."
    assert 1 <= len(lines[2:-1]) < len(filler)
    assert sum(len(line.split(": ", 1)[1]) for line in lines[1:]) <= CAP_CHARS
