"""``cache.explain()`` on every backend: the first difference names what was changed."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from langchain_core.caches import BaseCache
from langchain_core.load import dumps
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.outputs import Generation
from langchain_openai import ChatOpenAI

from gencache import Explanation, control
from tests.conftest import Factory, backends_with
from tests.helpers import FakeClock, gens

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


class _Recorder(BaseCache):
    """Records what LangChain asks a cache for: the real (prompt, llm_string) pairs."""

    def __init__(self) -> None:
        self.keys: list[tuple[str, str]] = []

    def lookup(self, prompt: str, llm_string: str) -> Sequence[Generation] | None:
        self.keys.append((prompt, llm_string))
        return [Generation(text="recorded")]

    def update(self, prompt: str, llm_string: str, return_val: Sequence[Generation]) -> None:
        pass

    def clear(self, **kwargs: Any) -> None:
        pass


def _key(model: str = "gpt-4o-mini", temperature: float = 0.2, **invoke: Any) -> tuple[str, str]:
    recorder = _Recorder()
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=COMPLETION))
    chat = ChatOpenAI(
        model=model,
        temperature=temperature,
        api_key="sk-test",  # type: ignore[arg-type]
        http_client=httpx.Client(transport=transport),
        cache=recorder,
    )
    tools = invoke.pop("tools", None)
    runnable: Any = chat.bind_tools(tools) if tools else chat
    messages = invoke.pop(
        "messages", [SystemMessage("Be terse."), HumanMessage("Capital of France?")]
    )
    runnable.invoke(messages, **invoke)
    return recorder.keys[0]


def _tool(name: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": name, "parameters": {"type": "object", "properties": {}}},
    }


MUTATIONS: dict[str, tuple[dict[str, Any], str]] = {
    "model name": ({"model": "gpt-4o"}, "llm_string: model"),
    "temperature": ({"temperature": 0.7}, "llm_string: temperature 0.7 != 0.2"),
    "bound tool": ({"tools": [_tool("other")]}, "llm_string: tools"),
    "stop sequence": ({"stop": ["END"]}, "llm_string: stop"),
    "message content": (
        {"messages": [SystemMessage("Be terse."), HumanMessage("Capital of Spain?")]},
        "prompt: message 2 (human) content differs at char 11",
    ),
    "number of messages": (
        {
            "messages": [
                SystemMessage("Be terse."),
                HumanMessage("Capital of France?"),
                HumanMessage("?"),
            ]
        },
        "prompt: 1 message more",
    ),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_the_first_difference_names_the_mutated_field(make_cache: Factory, mutation: str) -> None:
    cache = make_cache()
    base = _key(tools=[_tool("search")])
    cache.update(*base, gens("stored"))
    assert cache.explain(*base).hit
    changes, expected = MUTATIONS[mutation]
    changes = {"tools": [_tool("search")], **changes}
    asked = _key(**changes)
    assert cache.lookup(*asked) is None
    explanation = cache.explain(*asked)
    assert isinstance(explanation, Explanation)
    assert not explanation.hit
    assert explanation.differences, explanation
    assert explanation.differences[0].startswith(expected), explanation


def test_scope_is_named(make_cache: Factory) -> None:
    cache = make_cache()
    with control(scope="tenant-b"):
        cache.update("p", "[('model', 'm')]", gens("b"))
    with control(scope="tenant-a"):
        explanation = cache.explain("p", "[('model', 'm')]")
    assert not explanation.hit
    assert explanation.differences[0] == "stored in scope 'tenant-b', looked up in scope 'tenant-a'"


@pytest.mark.parametrize("make_cache", backends_with("timer"), indirect=True)
def test_expiry_is_named(make_cache: Factory) -> None:
    clock = FakeClock()
    cache = make_cache(ttl=10, timer=clock)
    cache.update("p", "[('model', 'm')]", gens("x"))
    clock.advance(22)
    explanation = cache.explain("p", "[('model', 'm')]")
    assert not explanation.hit
    assert explanation.differences[0] == "expired 12 s ago"


def test_read_disabled_is_named_and_explain_changes_nothing(make_cache: Factory) -> None:
    cache = make_cache()
    cache.update(dumps([HumanMessage("q")]), "[('model', 'm')]", gens("x"))
    before = cache.stats()
    with control(read=False):
        explanation = cache.explain(dumps([HumanMessage("q")]), "[('model', 'm')]")
    assert explanation.differences == ("read disabled by gencache.control(read=False)",)
    for _ in range(3):
        cache.explain(dumps([HumanMessage("other")]), "[('model', 'm')]")
    after = cache.stats()
    assert (after.hits, after.misses, after.size) == (before.hits, before.misses, before.size)


def test_an_empty_cache(make_cache: Factory) -> None:
    explanation = make_cache().explain("p", "l")
    assert not explanation.hit
    assert "no entry" in explanation.reason


def test_max_age_is_named_and_the_entry_stays(make_cache: Factory) -> None:
    """In real time on every backend: a slow machine only makes the entry older."""
    cache = make_cache()
    cache.update("p", "[('model', 'm')]", gens("x"))
    time.sleep(0.3)
    with control(max_age=0.1):
        assert cache.lookup("p", "[('model', 'm')]") is None
        explanation = cache.explain("p", "[('model', 'm')]")
    assert not explanation.hit
    assert explanation.reason == "Miss: the same request is stored, but not usable."
    (difference,) = explanation.differences
    assert difference.startswith("written "), explanation
    assert difference.endswith(" ago, older than max_age=0.1 s"), explanation
    assert cache.explain("p", "[('model', 'm')]").hit  # outside control(): still stored
    assert cache.lookup("p", "[('model', 'm')]") == gens("x")


@pytest.mark.parametrize("make_cache", backends_with("damage"), indirect=True)
def test_a_damaged_entry_is_named_and_left_to_the_lookup(
    make_cache: Factory, request: pytest.FixtureRequest
) -> None:
    backend = request.node.callspec.params["make_cache"]
    cache = make_cache()
    cache.update("p", "[('model', 'm')]", gens("x"))
    backend.damage(cache, "p", "[('model', 'm')]")
    first = cache.explain("p", "[('model', 'm')]")
    assert not first.hit
    assert first.reason == "Miss: the stored entry is damaged."
    assert first.differences[0].startswith("undecodable"), first
    assert cache.explain("p", "[('model', 'm')]") == first  # explain deleted nothing
    assert cache.lookup("p", "[('model', 'm')]") is None  # the lookup deletes it ...
    assert "no entry" in cache.explain("p", "[('model', 'm')]").reason
    cache.update("p", "[('model', 'm')]", gens("y"))  # ... and the next write heals it
    assert cache.explain("p", "[('model', 'm')]").hit


def test_an_expiry_is_named_after_the_lookup_that_missed(make_cache: Factory) -> None:
    """What a user does: a call misses, then they ask why. The lookup removed the expired
    entry (memory), or Redis did at its PX; the cache remembers when it expired."""
    cache = make_cache(ttl=0.2)
    cache.update("p", "[('model', 'm')]", gens("x"))
    cache.update("q", "[('model', 'm')]", gens("y"))
    with control(scope="tenant-a", ttl=0.2):
        cache.update("p", "[('model', 'm')]", gens("scoped"))
    time.sleep(0.5)
    assert cache.lookup("p", "[('model', 'm')]") is None
    explanation = cache.explain("p", "[('model', 'm')]")
    assert not explanation.hit
    assert explanation.reason == "Miss: the entry for this request expired.", explanation
    (difference,) = explanation.differences
    assert difference.startswith("expired "), explanation
    assert difference.endswith(" ago"), explanation
    cache.clear(scope="tenant-a")  # forgets that scope's expiries only
    with control(scope="tenant-a"):
        assert "expired" not in cache.explain("p", "[('model', 'm')]").reason
    assert "expired" in cache.explain("p", "[('model', 'm')]").reason
    cache.update("p", "[('model', 'm')]", gens("again"))  # written again: a hit, not expired
    assert cache.explain("p", "[('model', 'm')]").hit
    cache.clear()
    assert "expired" not in cache.explain("q", "[('model', 'm')]").reason


@pytest.mark.parametrize("make_cache", backends_with("expired_rows"), indirect=True)
def test_another_process_can_name_an_expiry(
    make_cache: Factory, request: pytest.FixtureRequest
) -> None:
    """SQLite keeps an expired row until a write purges it: a second process (the CLI, a
    new run) sees why, even after its own lookup missed."""
    backend = request.node.callspec.params["make_cache"]
    cache = make_cache(ttl=0.2)
    cache.update("p", "[('model', 'm')]", gens("x"))
    time.sleep(0.5)
    other = backend.reopen(cache)
    assert other.lookup("p", "[('model', 'm')]") is None
    assert other.explain("p", "[('model', 'm')]").differences[0].startswith("expired ")
