"""ask in LLM mode through litellm with a scripted provider: answered at tier 1, probe
cycles, the LLM-call budget, the deadline, malformed output, and the streamed order."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from memsvc.config import LLMSettings
from memsvc.llm import LiteLLM
from memsvc.llm.fake import HANG, Registered, registered
from tests.api.helpers import make_cube
from tests.conftest import Service
from tests.graph.helpers import app_state
from tests.retrieval.test_ask import ask, conversation, trace

pytestmark = pytest.mark.anyio

Reply = Callable[[str, int], str]


class Script:
    """Answers each ask prompt with ``reply(prompt, call number)``."""

    def __init__(self) -> None:
        self.reply: Reply = lambda prompt, n: json.dumps({"answer": "?"})
        self.n = 0

    def __call__(self, messages: list[dict[str, Any]]) -> str:
        self.n += 1
        return self.reply(str(messages[1]["content"]), self.n)


@pytest.fixture
def llm(service: Service) -> Iterator[tuple[Script, Registered]]:
    s = Script()
    with registered(s) as reg:
        state = app_state(service)
        state.llm = LiteLLM(LLMSettings(model=reg.model, max_retries=1, provider_retries=0))
        try:
            yield s, reg
        finally:
            state.llm = None


def number_of(prompt: str, text: str) -> int:
    """The evidence number the prompt gives the memory whose text starts with ``text``."""
    m = re.search(r"\[(\d+)\][^\n]*\n\"\"\"\n" + re.escape(text), prompt)
    assert m, prompt
    return int(m.group(1))


async def test_answered_at_tier_one_with_one_call(
    service: Service, llm: tuple[Script, Registered]
) -> None:
    s, reg = llm
    cube = await make_cube(service)
    mems = await conversation(service, cube)
    s.reply = lambda p, n: json.dumps(
        {"answer": "Hope House", "used": [number_of(p, "Hope House.")], "cues": ["named it"]}
    )
    body = await ask(service, cube, question="Which adoption agency did Caroline pick?", top_k=3)
    assert (body["mode"], body["answer"], body["llm_calls"], body["cycles"]) == (
        "llm",
        "Hope House",
        1,
        0,
    )
    assert body["tokens"] > 0 and body["stopped"] is None and body["cues"] == ["named it"]
    assert body["evidence"][0]["memory"]["id"] == mems[2]["id"]  # cited first
    assert "cited by the answer" in body["evidence"][0]["why"]
    prompt = reg.handler.calls[0].messages[1]["content"]
    assert "Which adoption agency did Caroline pick?" in prompt and "Hope House." in prompt
    t = await trace(service, body["trace_id"])
    step = next(x for x in t["steps"] if x["kind"] == "llm")
    assert (step["decision"], step["prompt"], step["model"]) == (
        "answered",
        "ask_answer.v1",
        reg.model,
    )
    assert step["tokens"] == body["tokens"] and step["found"] == [mems[2]["id"]]
    # heuristic mode on request: no call
    h = await ask(service, cube, question="Which adoption agency?", mode="heuristic")
    assert (h["mode"], h["llm_calls"], h["answer"]) == ("heuristic", 0, None)
    assert len(reg.handler.calls) == 1


async def test_probe_cycles_then_an_answer(
    service: Service, llm: tuple[Script, Registered]
) -> None:
    s, reg = llm
    cube = await make_cube(service)
    await conversation(service, cube)

    def reply(p: str, n: int) -> str:
        if n == 1:
            return json.dumps({"answer": None, "probes": ["beach camping kids"], "cues": ["a"]})
        return json.dumps({"answer": "At the beach", "used": [1], "cues": ["b"]})

    s.reply = reply
    body = await ask(service, cube, question="Where did Melanie go with her family?")
    assert (body["answer"], body["llm_calls"], body["cycles"]) == ("At the beach", 2, 1)
    assert body["cues"] == ["a", "b"]
    t = await trace(service, body["trace_id"])
    kinds = [x["kind"] for x in t["steps"]]
    assert kinds == ["retrieve", "gate", "llm", "probe", "fold", "gate", "llm", "select"]
    assert t["steps"][3]["queries"][0] == "beach camping kids"
    # The second call saw the first call's cues.
    assert "- a" in reg.handler.calls[1].messages[1]["content"]


async def test_the_llm_call_budget_stops_the_loop(
    service: Service, llm: tuple[Script, Registered]
) -> None:
    s, _ = llm
    cube = await make_cube(service)
    await conversation(service, cube)
    s.reply = lambda p, n: json.dumps({"answer": None, "probes": [f"probe number {n}"]})
    body = await ask(
        service,
        cube,
        question="Where did Melanie go?",
        budget={"max_llm_calls": 2, "max_cycles": 5},
    )
    assert (body["answer"], body["llm_calls"], body["stopped"]) == (None, 2, "budget")
    assert body["evidence"]
    # and the cycle budget, with the last call told it may not probe
    s.n = 0
    body = await ask(service, cube, question="Where did Melanie go?", budget={"max_cycles": 1})
    assert (body["cycles"], body["llm_calls"], body["stopped"]) == (1, 2, "budget")


async def test_a_hanging_llm_meets_the_deadline(
    service: Service, llm: tuple[Script, Registered]
) -> None:
    s, _ = llm
    cube = await make_cube(service)
    await conversation(service, cube)
    s.reply = lambda p, n: HANG
    started = time.monotonic()
    body = await ask(service, cube, question="Where did Melanie go?", budget={"deadline_ms": 800})
    assert time.monotonic() - started < 10
    assert (body["answer"], body["stopped"]) == (None, "deadline")
    assert body["evidence"]
    t = await trace(service, body["trace_id"])
    llm_step = next(x for x in t["steps"] if x["kind"] == "llm")
    assert llm_step["decision"] == "failed" and "deadline" in llm_step["error"]


async def test_malformed_output_is_repaired_once_then_evidence_stands(
    service: Service, llm: tuple[Script, Registered]
) -> None:
    s, reg = llm
    cube = await make_cube(service)
    await conversation(service, cube)
    s.reply = lambda p, n: "Sure! The answer is Hope House."
    body = await ask(service, cube, question="Which adoption agency did Caroline pick?")
    assert body["answer"] is None and body["evidence"] and body["stopped"] is None
    assert body["llm_calls"] == 2 and len(reg.handler.calls) == 2  # one repair
    t = await trace(service, body["trace_id"])
    step = next(x for x in t["steps"] if x["kind"] == "llm")
    assert step["decision"] == "failed" and step["error"].startswith("llm_invalid_output")
    # an evidence number that does not exist is invalid too: repaired into a valid reply
    s.reply = lambda p, n: json.dumps({"answer": "x", "used": [99 if n % 2 else 1]})
    body = await ask(service, cube, question="Which adoption agency did Caroline pick?")
    assert body["answer"] == "x" and body["llm_calls"] == 2


async def test_streamed_steps_in_llm_mode(service: Service, llm: tuple[Script, Registered]) -> None:
    s, _ = llm
    cube = await make_cube(service)
    await conversation(service, cube)
    s.reply = lambda p, n: json.dumps(
        {"answer": None, "probes": ["camping"]} if n == 1 else {"answer": "beach", "used": [1]}
    )
    headers = {**service.auth(), "Accept": "text/event-stream"}
    async with service.client.stream(
        "POST", f"/v1/cubes/{cube}/ask", json={"question": "Where did Melanie go?"}, headers=headers
    ) as resp:
        raw = "".join([c async for c in resp.aiter_text()])
    blocks = [b.split("\n", 1) for b in raw.strip().split("\n\n")]
    kinds = [json.loads(b[1][6:]).get("kind", b[0][7:]) for b in blocks]
    assert kinds == ["retrieve", "gate", "llm", "probe", "fold", "gate", "llm", "select", "result"]
    assert json.loads(blocks[-1][1][6:])["answer"] == "beach"
