"""The enrichment prompts, each with its typed context and typed response model.

Templates: ``prompts/enrich_note.v1.md.j2`` and ``prompts/link_decide.v1.md.j2``.
Candidates are numbered 1..n in the prompt (models copy small numbers reliably, UUIDs not).
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field, field_validator

from memsvc.llm.prompts import Prompt
from memsvc.schemas import Relation


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore")


def _terms(values: list[str], *, lower: bool) -> list[str]:
    out = []
    for v in values:
        v = " ".join(str(v).split())
        if v:
            out.append(v.lower() if lower else v)
    return list(dict.fromkeys(out))


# -- enrich_note: keywords, tags and a one-line context for one memory ---------------------


class EnrichNoteContext(BaseModel):
    content: str
    kind: str
    speakers: list[str] = Field(default_factory=list)
    date: str | None = None
    tags: list[str] = Field(default_factory=list)


class EnrichNoteResponse(_Response):
    keywords: list[str] = Field(max_length=16)
    tags: list[str] = Field(max_length=10)
    context: str = Field(min_length=1, max_length=400)

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, v: list[str]) -> list[str]:
        return [k for k in _terms(v, lower=False) if len(k) <= 80][:10]

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: list[str]) -> list[str]:
        return [t for t in _terms(v, lower=True) if len(t) <= 60][:6]

    @field_validator("context")
    @classmethod
    def _one_line(cls, v: str) -> str:
        line = " ".join(v.split())
        if not line:
            raise ValueError("context is blank")
        return line


ENRICH_NOTE: Prompt[EnrichNoteContext, EnrichNoteResponse] = Prompt(
    name="enrich_note",
    version=1,
    context=EnrichNoteContext,
    response=EnrichNoteResponse,
    example=EnrichNoteContext(
        content="Caroline adopted a golden retriever named Max.",
        kind="fact",
        speakers=["Caroline"],
        date="8 May 2023",
        tags=["pets"],
    ),
)


# -- link_decide: links to candidate neighbours and their evolution -------------------------


class NoteView(BaseModel):
    content: str
    context: str | None = None
    keywords: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    speakers: list[str] = Field(default_factory=list)
    date: str | None = None


class CandidateView(BaseModel):
    n: int
    content: str
    context: str | None = None
    tags: list[str] = Field(default_factory=list)
    date: str | None = None
    similarity: float


class LinkDecideContext(BaseModel):
    note: NoteView
    candidates: list[CandidateView]
    max_links: int
    max_evolutions: int


class LinkDecision(_Response):
    candidate: int = Field(ge=1)
    relation: Relation
    weight: float = Field(ge=0.0, le=1.0)
    reason: str = Field(min_length=1, max_length=500)
    # True when both state something about the same subject (needed to close validity).
    same_subject: bool = False


class Evolution(_Response):
    candidate: int = Field(ge=1)
    context: str | None = Field(default=None, max_length=400)
    tags: list[str] | None = Field(default=None, max_length=10)
    reason: str = Field(min_length=1, max_length=500)

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _terms(v, lower=True)[:6]


class LinkDecideResponse(_Response):
    links: list[LinkDecision] = Field(default_factory=list, max_length=20)
    evolutions: list[Evolution] = Field(default_factory=list, max_length=20)


LINK_DECIDE: Prompt[LinkDecideContext, LinkDecideResponse] = Prompt(
    name="link_decide",
    version=1,
    context=LinkDecideContext,
    response=LinkDecideResponse,
    example=LinkDecideContext(
        note=NoteView(
            content="Caroline moved to Lisbon in June.",
            context="Caroline's new home city.",
            keywords=["Caroline", "Lisbon", "moved"],
            tags=["relocation"],
            speakers=["Caroline"],
            date="2 June 2023",
        ),
        candidates=[
            CandidateView(
                n=1,
                content="Caroline lives in Berlin.",
                context="Where Caroline lives.",
                tags=["home"],
                date="8 May 2023",
                similarity=0.71,
            )
        ],
        max_links=8,
        max_evolutions=3,
    ),
)


def check_link_decisions(n_candidates: int) -> Callable[[LinkDecideResponse], None]:
    """A validator for a response: every candidate number must be one that was shown."""

    def check(resp: LinkDecideResponse) -> None:
        shown = range(1, n_candidates + 1)
        bad = sorted(
            {d.candidate for d in resp.links if d.candidate not in shown}
            | {e.candidate for e in resp.evolutions if e.candidate not in shown}
        )
        if bad:
            raise ValueError(f"candidate numbers {bad} were not shown (use 1..{n_candidates})")

    return check


# -- summarise_window: one summary of a window or cluster of memories ----------------------


class TurnView(BaseModel):
    n: int
    text: str
    speaker: str | None = None
    date: str | None = None


class SummariseWindowContext(BaseModel):
    layer: str
    turns: list[TurnView]
    max_words: int


class SummariseWindowResponse(_Response):
    summary: str = Field(min_length=1, max_length=4000)

    @field_validator("summary")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        text = v.strip()
        if not text:
            raise ValueError("summary is blank")
        return text


SUMMARISE_WINDOW: Prompt[SummariseWindowContext, SummariseWindowResponse] = Prompt(
    name="summarise_window",
    version=1,
    context=SummariseWindowContext,
    response=SummariseWindowResponse,
    example=SummariseWindowContext(
        layer="episodic",
        turns=[
            TurnView(
                n=1,
                text="I adopted a golden retriever, Max!",
                speaker="Caroline",
                date="8 May 2023",
            ),
            TurnView(n=2, text="Lovely! I'll visit in June.", speaker="Melanie", date="8 May 2023"),
        ],
        max_words=120,
    ),
)
