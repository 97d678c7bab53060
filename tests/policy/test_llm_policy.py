"""Write policy ``llm`` through litellm with a scripted provider: one call per batch (or
chunk), every message decided once, invalid output repaired once then raised, and the
function-call forms a Mem-alpha checkpoint answers in."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from memsvc.config import LLMSettings
from memsvc.llm import LiteLLM, LLMOutputInvalid, LLMUnavailable, Usage, render
from memsvc.llm.fake import TOOL_CALLS, Registered, registered, server_error
from memsvc.policy.decide import Batch, Decision, Message, Neighbour, Situation
from memsvc.policy.llm_policy import (
    INGEST_DECIDE,
    MAX_MESSAGE_CHARS,
    IngestDecideResponse,
    LLMPolicy,
    Op,
    parse_tool_calls,
)

pytestmark = pytest.mark.anyio

Reply = Callable[[str, int], str]
WHEN = datetime(2023, 5, 8, 14, 2, tzinfo=UTC)


class Script:
    """Answers call ``n`` (from 1) with ``reply(user prompt, n)``; keeps the prompts."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.prompts: list[str] = []

    def __call__(self, messages: list[dict[str, Any]]) -> str:
        self.prompts.append(str(messages[-1]["content"]))
        return self.reply(str(messages[1]["content"]), len(self.prompts))


@pytest.fixture
def provider() -> Iterator[Callable[[Reply], tuple[Script, LiteLLM]]]:
    """A real :class:`LiteLLM` routed to a scripted provider answering with ``reply``."""
    script = Script(lambda prompt, n: "{}")
    with registered(script) as reg:

        def use(reply: Reply) -> tuple[Script, LiteLLM]:
            script.reply = reply
            return script, llm_for(reg)

        yield use


def llm_for(reg: Registered) -> LiteLLM:
    return LiteLLM(LLMSettings(model=reg.model, max_retries=1, provider_retries=0))


def memory(content: str, similarity: float, layer: str = "semantic") -> Neighbour:
    return Neighbour(
        id=uuid.uuid4(), content=content, layer=layer, kind="fact", similarity=similarity
    )


LAST = memory("Caroline is packing for her move.", 0.5, "episodic")
BERLIN = memory("Caroline lives in Berlin.", 0.9)
TEA = memory("Caroline loves green tea.", 0.7)
TEXTS = [
    "Hi Mel!",
    "I moved to Lisbon last week.",
    "The flat is near the river.",
    "I don't like tea anymore, actually.",
    "Finished packing the last boxes too.",
    "I live in Lisbon now, not Berlin.",
    "ok bye",
]


def situation(i: int, text: str, neighbours: tuple[Neighbour, ...] = ()) -> Situation:
    msg = Message(index=i, role="user", name="Caroline", content=text, timestamp=WHEN)
    return Situation(
        message=msg,
        embedding=np.zeros(4, dtype=np.float32),
        neighbours=neighbours,
        position=3 + i,
        last_memory=LAST,
        last_memory_messages=2,
    )


def batch(texts: list[str] = TEXTS) -> Batch:
    near = (BERLIN, TEA)
    again = (memory("unrelated", 0.1), BERLIN, TEA)
    sits = [situation(i, t, near if i % 2 else again) for i, t in enumerate(texts)]
    return Batch(situations=sits, user_id="caroline", core="Caroline: counsellor.")


def ops(*operations: dict[str, Any]) -> str:
    return json.dumps({"operations": list(operations)})


# m1 is the thread's last memory, then the neighbours by similarity: m2 Berlin, m3 tea.
GOOD = ops(
    {"op": "skip", "message": [0, 6], "reason": "greeting"},
    {"op": "memory_insert", "message": [2, 1], "layer": "episodic",
     "content": "Caroline moved to Lisbon in May 2023; her flat is near the river.",
     "reason": "the move"},
    {"op": "memory_delete", "message": 3, "layer": "semantic", "memory_id": "m3",
     "reason": "no longer likes tea"},
    {"op": "merge", "message": [4], "memory_id": "m1",
     "content": "Caroline packed for her move and finished the last boxes."},
    {"op": "update", "message": [5], "memory_type": "semantic", "memory_id": "m2",
     "new_content": "Caroline lives in Lisbon."},
)  # fmt: skip


def expected() -> list[tuple[Any, ...]]:
    return [
        ("skip", None, None, None, None),
        ("insert", "episodic", None, None, "Caroline moved to Lisbon in May 2023; her flat "
         "is near the river."),
        ("merge", "episodic", None, 1, "Caroline moved to Lisbon in May 2023; her flat is "
         "near the river."),
        ("delete", "semantic", TEA.id, None, None),
        ("merge", "episodic", LAST.id, None, "Caroline packed for her move and finished the "
         "last boxes."),
        ("update", "semantic", BERLIN.id, None, "Caroline lives in Lisbon."),
        ("skip", None, None, None, None),
    ]  # fmt: skip


def shape(decisions: list[Decision]) -> list[tuple[Any, ...]]:
    return [(d.operation, d.layer, d.target_id, d.target_message, d.content) for d in decisions]


async def test_a_batch_is_decided_in_one_call_one_decision_per_message(
    provider: Callable[[Reply], tuple[Script, LiteLLM]],
) -> None:
    script, llm = provider(lambda prompt, n: GOOD)
    usage = Usage()
    decisions = await LLMPolicy(llm, usage=usage).decide(batch())
    assert shape(decisions) == expected()
    assert len(script.prompts) == 1 and usage.calls == 1 and usage.invalid_outputs == 0
    assert [d.reason for d in decisions[:4]] == [
        "greeting", "the move", "the move", "no longer likes tea"
    ]  # fmt: skip
    assert decisions[1].features == {
        "group_size": 2.0, "llm_calls": 1.0, "chunk": 0.0, "memories_shown": 4.0,
        "tool_form": 0.0,
    }  # fmt: skip
    prompt = script.prompts[0]
    # The neighbours' union, deduplicated, best first, after the thread's last memory.
    heads = re.findall(r"^\[(m\d)\] (\S+)", prompt, re.M)
    assert heads == [("m1", "episodic/fact"), ("m2", "semantic/fact"), ("m3", "semantic/fact"),
                     ("m4", "semantic/fact")]  # fmt: skip
    assert "(the last memory written from this conversation)" in prompt
    assert '"memory_id": "m1"' in prompt and "Caroline: counsellor." in prompt
    assert re.findall(r"^\[(\d+)\] \(2023-05-08 14:02\) Caroline:$", prompt, re.M) == [
        str(i) for i in range(7)
    ]
    assert LLMPolicy.name == "llm" and LLMPolicy.version == INGEST_DECIDE.version == 1


async def test_large_batches_are_chunked_into_bounded_calls(
    provider: Callable[[Reply], tuple[Script, LiteLLM]],
) -> None:
    def skip_all(prompt: str, n: int) -> str:
        shown = [int(i) for i in re.findall(r"^\[(\d+)\] ", prompt, re.M)]
        return ops({"op": "skip", "message": shown, "reason": f"call {n}"})

    script, llm = provider(skip_all)
    texts = [f"message number {i}" for i in range(45)]
    decisions = await LLMPolicy(llm, chunk_size=20).decide(batch(texts))
    assert len(script.prompts) == 3
    assert [d.operation for d in decisions] == ["skip"] * 45
    assert [d.reason for d in decisions] == ["call 1"] * 20 + ["call 2"] * 20 + ["call 3"] * 5
    assert [d.features["chunk"] for d in decisions[::20]] == [0.0, 1.0, 2.0]
    sizes = [len(re.findall(r"^\[\d+\] ", p, re.M)) for p in script.prompts]
    assert sizes == [20, 20, 5]
    # Only the first chunk is offered the thread's last memory as a merge target.
    marked = ["(the last memory written from this conversation)" in p for p in script.prompts]
    assert marked == [True, False, False]
    assert await LLMPolicy(llm).decide(Batch(situations=[])) == []
    assert len(script.prompts) == 3


def without(index: int) -> str:
    data = json.loads(GOOD)
    data["operations"] = [o for o in data["operations"] if o.get("message") != [index]]
    return json.dumps(data)


def replaced(index: int, **change: Any) -> str:
    data = json.loads(GOOD)
    data["operations"][index].update(change)
    return json.dumps(data)


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ("Sure! Caroline moved to Lisbon.", "no JSON"),
        ('{"operations": [{"op": "memory_insert", "message": [0', "JSON"),
        (replaced(2, memory_id="m9"), "memory_id 'm9' is not one of the memories shown"),
        (replaced(2, memory_id=str(uuid.uuid4())), "is not one of the memories shown"),
        (without(5), "messages [5] are not covered"),
        (replaced(0, message=[0, 6, 7]), "message 7 is not one of"),
        (replaced(0, message=[0, 1, 6]), "message 1 is already covered"),
        (replaced(1, content="  "), "memory_insert needs a non-empty content"),
        (replaced(1, layer="working"), "layer"),
        (replaced(4, memory_id=None), "memory_update needs the memory_id"),
        (replaced(3, memory_id="m2"), "merge can only fold into the last memory"),
        (replaced(2, memory_id="m2"), "memory m2 is changed by more than one operation"),
        (replaced(4, op="memory_forget"), "op"),
        (replaced(0, message=None), "names no message"),
    ],
)
async def test_invalid_output_gets_one_repair_call(
    provider: Callable[[Reply], tuple[Script, LiteLLM]], bad: str, error: str
) -> None:
    script, llm = provider(lambda prompt, n: bad if n == 1 else GOOD)
    usage = Usage()
    decisions = await LLMPolicy(llm, usage=usage).decide(batch())
    assert shape(decisions) == expected()
    assert len(script.prompts) == 2 and usage.invalid_outputs == 1
    assert error in script.prompts[1]  # the repair call says what was wrong
    assert decisions[0].features["llm_calls"] == 2.0


async def test_still_invalid_output_is_raised_never_guessed(
    provider: Callable[[Reply], tuple[Script, LiteLLM]],
) -> None:
    script, llm = provider(lambda prompt, n: without(4))
    with pytest.raises(LLMOutputInvalid) as info:
        await LLMPolicy(llm).decide(batch())
    assert len(script.prompts) == 2
    assert "messages [4] are not covered" in info.value.detail["errors"][-1]


async def test_an_unavailable_provider_is_raised(
    provider: Callable[[Reply], tuple[Script, LiteLLM]],
) -> None:
    def fail(prompt: str, n: int) -> str:
        raise server_error(503)

    script, llm = provider(fail)
    with pytest.raises(LLMUnavailable):
        await LLMPolicy(llm).decide(batch())
    assert len(script.prompts) == 1


MEM_ALPHA_CALLS = [
    {"name": "memory_insert",
     "arguments": {"memory_type": "core", "content": "Caroline adopted a dog named Max."}},
    {"name": "memory_update",
     "arguments": {"memory_type": "semantic", "memory_id": "m2",
                   "new_content": "Caroline lives in Lisbon."}},
]  # fmt: skip
DOG_TEXTS = ["Hi Mel!", "I live in Lisbon now.", "I adopted a dog, his name is Max!"]
DOG_EXPECTED = [
    ("skip", None, None, None, None),
    ("update", "semantic", BERLIN.id, None, "Caroline lives in Lisbon."),
    ("insert", "core", None, None, "Caroline adopted a dog named Max."),
]


def openai_tool_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"id": f"call_{i}", "type": "function",
         "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
        for i, c in enumerate(calls)
    ]  # fmt: skip


def tool_call_text(calls: list[dict[str, Any]]) -> str:
    blocks = "\n".join(f"<tool_call>\n{json.dumps(c)}\n</tool_call>" for c in calls)
    return f"<think>Caroline moved and got a dog.</think>\n{blocks}"


@pytest.mark.parametrize(
    "reply",
    [
        TOOL_CALLS + json.dumps(openai_tool_calls(MEM_ALPHA_CALLS)),
        tool_call_text(MEM_ALPHA_CALLS),
    ],
    ids=["openai-tool-calls", "tool-call-text"],
)
async def test_mem_alpha_function_calls_are_decisions(
    provider: Callable[[Reply], tuple[Script, LiteLLM]], reply: str
) -> None:
    script, llm = provider(lambda prompt, n: reply)
    decisions = await LLMPolicy(llm).decide(batch(DOG_TEXTS))
    assert shape(decisions) == DOG_EXPECTED
    assert len(script.prompts) == 1
    # Calls name no message: attributed by shared words; the rest are skipped, visibly.
    assert decisions[0].reason == "not named by the model's function calls"
    assert [d.features["tool_form"] for d in decisions] == [1.0] * 3


async def test_calls_naming_their_message_are_placed_before_the_rest_are_attributed(
    provider: Callable[[Reply], tuple[Script, LiteLLM]],
) -> None:
    # The first call would be attributed to message 1 (Lisbon) were it placed first.
    lisbon = {"name": "memory_insert", "arguments": {"memory_type": "episodic",
              "content": "Caroline lives in Lisbon, Max too."}}  # fmt: skip
    named = {"name": "memory_insert", "arguments": {"memory_type": "semantic", "message": 1,
             "content": "Caroline lives in Lisbon now."}}  # fmt: skip
    script, llm = provider(lambda prompt, n: tool_call_text([lisbon, named]))
    decisions = await LLMPolicy(llm).decide(batch(DOG_TEXTS))
    assert [(d.operation, d.layer, d.content) for d in decisions] == [
        ("skip", None, None),
        ("insert", "semantic", "Caroline lives in Lisbon now."),
        ("insert", "episodic", "Caroline lives in Lisbon, Max too."),
    ]
    assert len(script.prompts) == 1


async def test_more_function_calls_than_messages_is_invalid(
    provider: Callable[[Reply], tuple[Script, LiteLLM]],
) -> None:
    skip_all = ops({"op": "skip", "message": [0, 1, 2]})
    extra = {"name": "memory_insert", "arguments": {"memory_type": "episodic", "content": "x"}}
    too_many = tool_call_text([*MEM_ALPHA_CALLS, extra, extra])
    script, llm = provider(lambda prompt, n: too_many if n == 1 else skip_all)
    decisions = await LLMPolicy(llm).decide(batch(DOG_TEXTS))
    assert "more operations than messages (3)" in script.prompts[1]
    assert [d.operation for d in decisions] == ["skip"] * 3


def test_parse_tool_calls_reads_all_three_forms() -> None:
    want = [
        Op(op="memory_insert", layer="core", content="Caroline adopted a dog named Max."),
        Op(op="memory_update", layer="semantic", memory_id="m2",
           content="Caroline lives in Lisbon."),
    ]  # fmt: skip
    assert parse_tool_calls(openai_tool_calls(MEM_ALPHA_CALLS)) == want
    assert parse_tool_calls(json.dumps({"tool_calls": openai_tool_calls(MEM_ALPHA_CALLS)})) == want
    assert parse_tool_calls(tool_call_text(MEM_ALPHA_CALLS)) == want
    ours = '```json\n{"operations": [{"op": "memory_delete", "message": 2, "memory_id": "m1"}]}```'
    assert parse_tool_calls(ours) == [Op(op="memory_delete", message=[2], memory_id="m1")]
    assert not IngestDecideResponse.model_validate({"operations": []}).tool_form
    assert IngestDecideResponse.model_validate([]).tool_form
    for bad in ("no calls here", "<tool_call>{not json}</tool_call>", '[{"name": "forget"}]'):
        with pytest.raises(ValueError):
            parse_tool_calls(bad)


async def test_long_texts_are_clipped_and_memories_capped(
    provider: Callable[[Reply], tuple[Script, LiteLLM]],
) -> None:
    long = "Caroline said " + "blah " * 2000 + "THE END"
    many = tuple(memory(f"memory {j}", 1 - j / 100) for j in range(50))
    sits = [situation(0, long, many)]
    script, llm = provider(lambda prompt, n: ops({"op": "skip", "message": 0}))
    await LLMPolicy(llm, max_memories=5).decide(Batch(situations=sits))
    prompt = script.prompts[0]
    cut = (
        r"Caroline said blah.* blah \[\.\.\. 8\d\d\d characters cut \.\.\.\] blah .*blah THE END\n"
    )
    assert re.search(cut, prompt)
    shown = re.search(r'\[0\] [^\n]*\n"""\n(.*?)\n"""', prompt, re.S)
    assert shown and len(shown.group(1)) < MAX_MESSAGE_CHARS + 40
    assert re.findall(r"^\[(m\d+)\]", prompt, re.M) == ["m1", "m2", "m3", "m4", "m5", "m6"]
    assert "memory 4" in prompt and "memory 5" not in prompt


def test_the_prompt_renders_its_example() -> None:
    text = render(INGEST_DECIDE, INGEST_DECIDE.example)
    assert "{{" not in text and '"operations"' in text
    assert "[2] (2023-05-08 14:03) Caroline:" in text
    assert '("memory_id": "m2")' in text
