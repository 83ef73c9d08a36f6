"""Canonical chat keys on every backend: conversations hit on their second run, and every
change to what reaches the provider misses."""

from __future__ import annotations

import asyncio
import base64

import pytest
from langchain_core.load import dumps
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import Generation

from tests.chat_models import CountingChatModel, ToolAgentModel
from tests.conftest import Factory
from tests.helpers import gens

L = "[('model', 'm')]"


def _conversation(model: CountingChatModel, turns: int) -> list[BaseMessage]:
    history: list[BaseMessage] = [SystemMessage("You are terse.")]
    for turn in range(turns):
        history.append(HumanMessage(f"question {turn}"))
        history.append(model.invoke(history))
    return history


@pytest.mark.parametrize("turns", [5, 20])
def test_a_conversation_run_twice_hits_every_turn(make_cache: Factory, turns: int) -> None:
    cache = make_cache()
    model = CountingChatModel(cache=cache, delay=0.0)
    _conversation(model, turns)
    assert model.calls == turns
    hits = cache.stats().hits
    _conversation(model, turns)  # LangChain's own cache: 1 of 5
    assert model.calls == turns
    assert cache.stats().hits - hits == turns


def test_without_canonical_keys_the_second_run_misses_as_in_langchain(make_cache: Factory) -> None:
    cache = make_cache(canonical_keys=False)
    model = CountingChatModel(cache=cache, delay=0.0)
    _conversation(model, 5)
    _conversation(model, 5)
    assert model.calls == 9  # only the first turn's prompt is the same byte for byte


async def test_a_conversation_through_ainvoke(make_cache: Factory) -> None:
    cache = make_cache()
    model = CountingChatModel(cache=cache, delay=0.0)

    async def run() -> None:
        history: list[BaseMessage] = []
        for turn in range(5):
            history.append(HumanMessage(f"question {turn}"))
            history.append(await model.ainvoke(history))

    await run()
    await run()
    assert model.calls == 5


def test_conversations_through_batch(make_cache: Factory) -> None:
    cache = make_cache()
    model = CountingChatModel(cache=cache, delay=0.0)

    def run() -> None:
        histories: list[list[BaseMessage]] = [[HumanMessage(f"user {u}")] for u in range(4)]
        for _ in range(3):
            answers = model.batch(histories)  # type: ignore[arg-type]
            for history, answer in zip(histories, answers, strict=True):
                history.extend([answer, HumanMessage("and then?")])

    run()
    calls = model.calls
    run()
    assert model.calls == calls == 12


def _agent(model: ToolAgentModel, questions: int) -> None:
    history: list[BaseMessage] = []
    for q in range(questions):
        history.append(HumanMessage(f"find {q}"))
        request = model.invoke(history)
        history.append(request)
        for call in request.tool_calls:
            history.append(
                ToolMessage(f"result for {call['args']['query']}", tool_call_id=call["id"])
            )
        history.append(model.invoke(history))


def test_an_agent_loop_with_tool_calls_hits_on_its_second_run(make_cache: Factory) -> None:
    cache = make_cache()
    model = ToolAgentModel(cache=cache, delay=0.0)
    _agent(model, 3)
    assert model.calls == 6
    _agent(model, 3)
    assert model.calls == 6


def _chat(*messages: BaseMessage) -> str:
    return dumps(list(messages))


_IMAGE = base64.b64encode(b"\x89PNG" + bytes(range(64))).decode()
_OTHER_IMAGE = base64.b64encode(b"\x89PNG" + bytes(range(63)) + b"\x00").decode()


def _base(image: str = _IMAGE) -> list[BaseMessage]:
    return [
        SystemMessage("You are terse."),
        HumanMessage(
            content=[
                {"type": "text", "text": "What is this?"},
                {"type": "image", "source_type": "base64", "data": image, "mime_type": "image/png"},
            ]
        ),
        AIMessage(
            "",
            tool_calls=[{"name": "search", "args": {"q": "cat", "n": 2}, "id": "call-1"}],
            id="resp-1",
            usage_metadata={"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
        ),
        ToolMessage("a cat", tool_call_id="call-1"),
    ]


def _mutations() -> dict[str, list[BaseMessage]]:
    out: dict[str, list[BaseMessage]] = {}
    m = _base()
    m[0] = SystemMessage("You are brief.")
    out["system word"] = m
    m = _base()
    m[3] = ToolMessage("a dog", tool_call_id="call-1")
    out["tool result"] = m
    m = _base()
    m[2] = AIMessage(
        "", tool_calls=[{"name": "search", "args": {"q": "cat", "n": 3}, "id": "call-1"}]
    )
    out["tool argument"] = m
    m = _base()
    m[2] = AIMessage(
        "", tool_calls=[{"name": "search", "args": {"q": "cat", "n": 2}, "id": "call-2"}]
    )
    out["tool call id"] = m
    out["image byte"] = _base(_OTHER_IMAGE)
    m = _base()
    m[1] = HumanMessage(content=[{"type": "text", "text": "What is thiz?"}, m[1].content[1]])
    out["content character"] = m
    m = _base()
    m[0] = HumanMessage("You are terse.")
    out["role"] = m
    m = _base()
    m.append(HumanMessage("more"))
    out["one message more"] = m
    return out


def test_changing_anything_the_provider_sees_misses(make_cache: Factory) -> None:
    cache = make_cache()
    cache.update(_chat(*_base()), L, gens("stored"))
    same = _base()
    same[2] = AIMessage(
        "",
        tool_calls=[{"name": "search", "args": {"n": 2, "q": "cat"}, "id": "call-1"}],  # key order
        id="resp-other",
        usage_metadata={"input_tokens": 9, "output_tokens": 9, "total_tokens": 18, "total_cost": 0},
        response_metadata={"model_name": "m", "created": 1},
    )
    assert cache.lookup(_chat(*same), L) == gens("stored")
    for name, messages in _mutations().items():
        assert cache.lookup(_chat(*messages), L) is None, name


async def test_many_turns_concurrently(make_cache: Factory) -> None:
    cache = make_cache()
    model = CountingChatModel(cache=cache, delay=0.0)
    prompts = [[HumanMessage(f"q{i}")] for i in range(10)]
    await asyncio.gather(*(model.ainvoke(p) for p in prompts))
    await asyncio.gather(*(model.ainvoke(p) for p in prompts))
    assert model.calls == 10
    assert cache.lookup("plain prompt", L) is None
    cache.update("plain prompt", L, [Generation(text="x")])
    assert cache.lookup("plain prompt", L) == [Generation(text="x")]
