"""The ``ask`` prompt (tier 1): its typed context and response.

Template: ``prompts/ask_answer.v1.md.j2``. Evidence is numbered 1..n in the prompt (models copy
small numbers reliably, UUIDs not); ``check_answer`` refuses numbers outside 1..n so an
invalid reply gets the wrapper's one repair call.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field, field_validator

from memsvc.llm.prompts import Prompt

# Evidence text is clipped to this many words in the prompt.
EVIDENCE_WORDS = 80


class AskEvidenceItem(BaseModel):
    n: int
    text: str
    date: str | None = None
    layer: str = "semantic"


class AskAnswerContext(BaseModel):
    question: str
    now: str | None = None
    evidence: list[AskEvidenceItem]
    cues: list[str] = Field(default_factory=list)
    may_probe: bool = True
    # The scope's core block lines (``ingest``'s profile), shown before the evidence.
    core: list[str] = Field(default_factory=list)


class AskAnswerResponse(BaseModel):
    model_config = ConfigDict(extra="ignore")

    answer: str | None = Field(default=None, max_length=4000)
    used: list[int] = Field(default_factory=list, max_length=100)
    probes: list[str] = Field(default_factory=list)
    cues: list[str] = Field(default_factory=list)

    @field_validator("answer")
    @classmethod
    def _blank_is_none(cls, v: str | None) -> str | None:
        return v.strip() or None if v is not None else None

    @field_validator("probes", "cues")
    @classmethod
    def _lines(cls, v: list[str]) -> list[str]:
        out = [" ".join(str(x).split())[:300] for x in v]
        return list(dict.fromkeys(x for x in out if x))


def check_answer(n: int) -> Callable[[AskAnswerResponse], None]:
    """Refuse evidence numbers outside 1..n (the reply is then repaired once)."""

    def check(r: AskAnswerResponse) -> None:
        bad = [u for u in r.used if not 1 <= u <= n]
        if bad:
            raise ValueError(f"used names evidence numbers outside 1..{n}: {bad}")

    return check


ASK_ANSWER: Prompt[AskAnswerContext, AskAnswerResponse] = Prompt(
    name="ask_answer",
    version=1,
    context=AskAnswerContext,
    response=AskAnswerResponse,
    example=AskAnswerContext(
        question="When did Caroline adopt her dog?",
        now="2023-06-01",
        evidence=[
            AskEvidenceItem(n=1, text="Caroline: I adopted Max last week!", date="8 May 2023"),
            AskEvidenceItem(n=2, text="Caroline went to a support group.", date="7 May 2023"),
        ],
        cues=["Max is a golden retriever."],
    ),
)
