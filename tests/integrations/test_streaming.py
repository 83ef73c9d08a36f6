"""``gencache.cached()``: streams answered from the cache, on every backend.

Two providers: LangChain's ``GenericFakeChatModel`` (which streams its answer word by
word) and the real ``langchain-openai`` ``ChatOpenAI`` over ``httpx.MockTransport``,
answering ``stream=True`` requests with an SSE body of ``chat.completion.chunk`` lines
as OpenAI does. Each counts the calls that reach it: a hit must make none.

Chunks are compared on every field but ``id``: a replay is a new run, and LangChain
gives a stream without a provider id the run's id (checked separately).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from langchain_core.callbacks import (
    AsyncCallbackHandler,
    AsyncCallbackManagerForLLMRun,
    BaseCallbackHandler,
    CallbackManagerForLLMRun,
)
from langchain_core.globals import get_llm_cache, set_llm_cache
from langchain_core.language_models import BaseChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.rate_limiters import BaseRateLimiter
from langchain_core.runnables import RunnableLambda
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, PrivateAttr

from gencache import control
from gencache.langchain import STREAM_INFO_KEY, CachedChatModel, cached
from tests.conftest import Factory

ANSWER = "The capital of France is Paris."
WORDS = 11  # GenericFakeChatModel splits ANSWER on whitespace, keeping the spaces


class Answers:
    """An endless iterator of ``ANSWER`` for ``GenericFakeChatModel``, counting calls."""

    def __init__(self, text: str = ANSWER) -> None:
        self.text = text
        self.calls = 0
        self._lock = threading.Lock()  # models called from several threads at once

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        with self._lock:
            self.calls += 1
        return self.text


def fake(answers: Answers, **kwargs: Any) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=answers, **kwargs)


class Breaks(GenericFakeChatModel):
    """Streams two chunks, then fails as a dropped connection would."""

    def _stream(self, *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        for i, chunk in enumerate(super()._stream(*args, **kwargs)):
            if i == 2:
                msg = "connection reset by peer"
                raise ConnectionError(msg)
            yield chunk


class NoStreaming(BaseChatModel):
    """A model that cannot stream: LangChain's ``stream`` falls back to ``invoke``."""

    calls: int = 0

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.calls += 1
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=ANSWER))])

    @property
    def _llm_type(self) -> str:
        return "no-streaming"


def chunks_of(stream: Iterator[Any]) -> list[AIMessageChunk]:
    """The chunks of a stream typed as yielding messages (a binding's, a chain's)."""
    out = list(stream)
    assert all(type(c) is AIMessageChunk for c in out)
    return out


def same(first: list[AIMessageChunk], second: list[AIMessageChunk]) -> None:
    """Equal chunks: same count, and each equal on every field but the run's id."""
    assert len(second) == len(first)
    for a, b in zip(first, second, strict=True):
        assert type(b) is AIMessageChunk
        assert b.model_dump(exclude={"id"}) == a.model_dump(exclude={"id"})


def text(chunks: list[AIMessageChunk]) -> str:
    return "".join(str(c.content) for c in chunks)


class Tokens(BaseCallbackHandler):
    """Records every ``on_llm_new_token`` call."""

    def __init__(self) -> None:
        self.tokens: list[Any] = []

    def on_llm_new_token(self, token: Any, **kwargs: Any) -> None:
        self.tokens.append(token)


class AsyncTokens(AsyncCallbackHandler):
    def __init__(self) -> None:
        self.tokens: list[Any] = []

    async def on_llm_new_token(self, token: Any, **kwargs: Any) -> None:
        self.tokens.append(token)


@pytest.fixture
def global_cache_reset() -> Iterator[None]:
    previous = get_llm_cache()
    yield
    set_llm_cache(previous)


# -- GenericFakeChatModel ------------------------------------------------------------------


def test_a_repeated_stream_is_replayed_without_calling_the_model(make_cache: Factory) -> None:
    cache = make_cache()
    answers = Answers()
    model = cached(fake(answers), cache=cache)
    first = list(model.stream("What is the capital of France?"))
    second = list(model.stream("What is the capital of France?"))
    assert answers.calls == 1
    assert len(first) == WORDS
    same(first, second)
    assert text(second) == ANSWER
    assert second[-1].chunk_position == "last"
    assert len(cache) == 1
    assert cache.stats().hits == 1


def test_a_replay_gets_its_own_run_id(make_cache: Factory) -> None:
    model = cached(fake(Answers()), cache=make_cache())
    first = list(model.stream("q"))
    second = list(model.stream("q"))
    assert len({c.id for c in first}) == len({c.id for c in second}) == 1
    assert first[0].id != second[0].id
    assert str(second[0].id).startswith("lc_run-")


async def test_a_repeated_astream_is_replayed_without_calling_the_model(
    make_cache: Factory,
) -> None:
    answers = Answers()
    model = cached(fake(answers), cache=make_cache())
    first = [c async for c in model.astream("What is the capital of France?")]
    second = [c async for c in model.astream("What is the capital of France?")]
    assert answers.calls == 1
    assert len(first) == WORDS
    same(first, second)


async def test_stream_and_astream_share_one_entry(make_cache: Factory) -> None:
    answers = Answers()
    model = cached(fake(answers), cache=make_cache())
    first = list(model.stream("q"))
    second = [c async for c in model.astream("q")]
    assert answers.calls == 1
    same(first, second)


async def test_astream_events_v2_shows_the_replayed_chunks(make_cache: Factory) -> None:
    answers = Answers()
    model = cached(fake(answers), cache=make_cache())
    cold = [e async for e in model.astream_events("q", version="v2")]
    warm = [e async for e in model.astream_events("q", version="v2")]
    assert answers.calls == 1
    for events in (cold, warm):
        kinds = [e["event"] for e in events]
        assert kinds == ["on_chat_model_start"] + ["on_chat_model_stream"] * WORDS + [
            "on_chat_model_end"
        ]
        streamed = [e["data"]["chunk"].content for e in events if e["event"].endswith("stream")]
        assert "".join(streamed) == ANSWER
        # Named as the wrapped model, as before it was wrapped.
        assert {e["name"] for e in events} == {"GenericFakeChatModel"}
    assert warm[-1]["data"]["output"].content == ANSWER


def test_callbacks_get_a_token_per_replayed_chunk(make_cache: Factory) -> None:
    model = cached(fake(Answers()), cache=make_cache())
    cold, warm = Tokens(), Tokens()
    chunks = list(model.stream("q", config={"callbacks": [cold]}))
    list(model.stream("q", config={"callbacks": [warm]}))
    assert warm.tokens == cold.tokens == [c.content for c in chunks]
    assert len(warm.tokens) == WORDS


async def test_async_callbacks_get_a_token_per_replayed_chunk(make_cache: Factory) -> None:
    model = cached(fake(Answers()), cache=make_cache())
    cold, warm = AsyncTokens(), AsyncTokens()
    [c async for c in model.astream("q", config={"callbacks": [cold]})]
    [c async for c in model.astream("q", config={"callbacks": [warm]})]
    assert warm.tokens == cold.tokens
    assert len(warm.tokens) == WORDS


def test_an_abandoned_stream_stores_nothing(make_cache: Factory) -> None:
    cache = make_cache()
    answers = Answers()
    model = cached(fake(answers), cache=cache)
    stream = model.stream("q")
    assert next(stream).content == "The"
    stream.close()  # type: ignore[attr-defined]  # the consumer stops reading
    for _ in zip(range(WORDS - 1), model.stream("q"), strict=False):  # all but the end
        pass
    assert len(cache) == 0
    assert answers.calls == 2
    list(model.stream("q"))  # read to the end: stored
    list(model.stream("q"))
    assert answers.calls == 3
    assert len(cache) == 1


async def test_an_abandoned_astream_stores_nothing(make_cache: Factory) -> None:
    cache = make_cache()
    answers = Answers()
    model = cached(fake(answers), cache=cache)
    stream = model.astream("q")
    assert (await anext(stream)).content == "The"
    await stream.aclose()  # type: ignore[attr-defined]
    assert len(cache) == 0
    [c async for c in model.astream("q")]
    assert answers.calls == 2
    assert len(cache) == 1


def test_a_failing_stream_stores_nothing(make_cache: Factory) -> None:
    cache = make_cache()
    answers = Answers()
    model = cached(Breaks(messages=answers), cache=cache)
    received: list[AIMessageChunk] = []
    with pytest.raises(ConnectionError):
        received.extend(model.stream("q"))
    assert len(received) == 2  # passed through as they came, before the failure
    assert len(cache) == 0
    with pytest.raises(ConnectionError):
        list(model.stream("q"))
    assert answers.calls == 2


async def test_a_failing_astream_stores_nothing(make_cache: Factory) -> None:
    cache = make_cache()
    answers = Answers()
    model = cached(Breaks(messages=answers), cache=cache)
    with pytest.raises(ConnectionError):
        [c async for c in model.astream("q")]
    assert len(cache) == 0


def test_invoke_then_stream_share_one_entry(make_cache: Factory) -> None:
    cache = make_cache()
    answers = Answers()
    model = cached(fake(answers), cache=cache)
    message = model.invoke("q")
    chunks = list(model.stream("q"))
    assert answers.calls == 1
    assert len(cache) == 1
    # An entry written without boundaries replays as one chunk holding the whole message.
    assert len(chunks) == 1
    assert chunks[0].content == message.content == ANSWER
    assert chunks[0].chunk_position == "last"


def test_a_stream_after_invoke_hits_replays_the_message(make_cache: Factory) -> None:
    # LangChain's cache path swaps a hit's message for a copy marked "total_cost": 0, on
    # the Generation the backend returned (the stored one itself, in memory).
    answers = Answers()
    model = cached(fake(answers), cache=make_cache())
    model.invoke("q")
    model.invoke("q")
    chunks = list(model.stream("q"))
    assert answers.calls == 1
    assert [c.content for c in chunks] == [ANSWER]
    assert chunks[0].usage_metadata is None


def test_stream_then_invoke_share_one_entry(make_cache: Factory) -> None:
    cache = make_cache()
    answers = Answers()
    model = cached(fake(answers), cache=cache)
    chunks = list(model.stream("q"))
    message = model.invoke("q")
    assert answers.calls == 1
    assert len(cache) == 1
    assert type(message) is AIMessage  # the merged message, as a non-streamed call gives
    assert message.content == text(chunks) == ANSWER
    result = model.generate([[HumanMessage("q")]])
    generation = result.generations[0][0]
    assert type(generation) is ChatGeneration
    assert generation.generation_info is None  # the boundaries stay gencache's business


async def test_astream_then_ainvoke_share_one_entry(make_cache: Factory) -> None:
    answers = Answers()
    model = cached(fake(answers), cache=make_cache())
    [c async for c in model.astream("q")]
    message = await model.ainvoke("q")
    assert answers.calls == 1
    assert message.content == ANSWER


def test_entries_of_the_plain_model_are_hits(make_cache: Factory) -> None:
    cache = make_cache()
    fake(Answers(), cache=cache).invoke("q")  # the plain model, with LangChain's cache path
    answers = Answers("never used")
    chunks = list(cached(fake(answers), cache=cache).stream("q"))
    assert answers.calls == 0
    assert text(chunks) == ANSWER


def test_the_plain_model_reads_a_stored_stream(make_cache: Factory) -> None:
    cache = make_cache()
    list(cached(fake(Answers()), cache=cache).stream("q"))
    answers = Answers("never used")
    message = fake(answers, cache=cache).invoke("q")
    assert answers.calls == 0
    assert type(message) is AIMessage
    assert message.content == ANSWER


def test_requests_with_other_settings_are_other_entries(make_cache: Factory) -> None:
    cache = make_cache()
    answers = Answers()
    model = cached(fake(answers), cache=cache)
    list(model.stream("q"))
    list(model.stream("q", stop=["."]))
    list(model.stream("another question"))
    list(model.stream([HumanMessage("q", id="ignored: ids are not part of the key")]))
    assert answers.calls == 3
    assert len(cache) == 3


def test_the_global_cache_is_read_at_call_time(
    make_cache: Factory, global_cache_reset: None
) -> None:
    answers = Answers()
    model = cached(fake(answers))
    set_llm_cache(None)
    list(model.stream("q"))
    list(model.stream("q"))
    assert answers.calls == 2  # no cache: every stream reaches the model
    cache = make_cache()
    set_llm_cache(cache)
    list(model.stream("q"))
    second = list(model.stream("q"))
    assert answers.calls == 3
    assert text(second) == ANSWER
    assert len(cache) == 1


def test_replay_delay_paces_the_same_chunks(make_cache: Factory) -> None:
    cache = make_cache()
    answers = Answers()
    first = list(cached(fake(answers), cache=cache).stream("q"))
    paced = list(cached(fake(answers), cache=cache, replay_delay=0.001).stream("q"))
    assert answers.calls == 1
    same(first, paced)


def test_lcel_chains_batch_and_config_go_through_the_cache(make_cache: Factory) -> None:
    answers = Answers()
    model = cached(fake(answers), cache=make_cache())
    chain = ChatPromptTemplate.from_messages([("human", "{question}")]) | model.with_config(
        tags=["chat"]
    )
    first = chunks_of(chain.stream({"question": "q"}))
    second = chunks_of(chain.stream({"question": "q"}))
    assert answers.calls == 1
    same(first, second)
    model.batch(["a", "b"])
    assert [m.content for m in model.batch(["a", "b"])] == [ANSWER, ANSWER]
    assert answers.calls == 3


def test_a_model_that_cannot_stream_is_cached_through_invoke(make_cache: Factory) -> None:
    inner = NoStreaming()
    model = cached(inner, cache=make_cache())
    first = list(model.stream("q"))
    second = list(model.stream("q"))
    assert inner.calls == 1
    assert [c.content for c in first] == [c.content for c in second] == [ANSWER]


def test_malformed_boundaries_replay_the_message_whole(make_cache: Factory) -> None:
    cache = make_cache()
    answers = Answers()
    model = cached(fake(answers), cache=cache)
    list(model.stream("q"))  # find the key the stream used, then overwrite its entry
    key = _only_key(cache, model)
    message = AIMessage(content=ANSWER)
    for hostile in (
        {"v": 1, "n": [3, 10_000]},  # lengths that do not add up to the text
        {"v": 1, "n": [3, -3, len(ANSWER)]},
        {"v": 1, "n": [3.0, len(ANSWER) - 3]},
        {"v": 99, "n": [len(ANSWER)]},  # a layout this version does not know
        {"v": 1, "c": "not a list"},
        "not a dict",
    ):
        info = {STREAM_INFO_KEY: hostile}
        cache.update(*key, [ChatGeneration(message=message, generation_info=info)])
        chunks = list(model.stream("q"))
        assert [c.content for c in chunks] == [ANSWER], hostile
    assert answers.calls == 1


def test_malformed_chunk_fields_replay_the_text(make_cache: Factory) -> None:
    cache = make_cache()
    answers = Answers()
    model = cached(fake(answers), cache=cache)
    first = list(model.stream("q"))
    key = _only_key(cache, model)
    lengths = [len(str(c.content)) for c in first]
    end = {str(len(first) - 1): {"pos": "last"}}
    bad = {"0": {"u": "not usage"}, "1": ["not", "a", "dict"], "2": {"unknown": 1}}
    hostile = {"v": 1, "n": lengths, "x": {**bad, **end}}
    message = AIMessage(content=ANSWER)
    cache.update(
        *key, [ChatGeneration(message=message, generation_info={STREAM_INFO_KEY: hostile})]
    )
    replayed = list(model.stream("q"))
    assert answers.calls == 1
    assert [c.content for c in replayed] == [c.content for c in first]
    assert replayed[0].usage_metadata is None


def test_content_blocks_are_replayed_as_blocks(make_cache: Factory) -> None:
    answers = Answers()
    model = cached(fake(answers, output_version="v1"), cache=make_cache())
    first = list(model.stream("q"))
    second = list(model.stream("q"))
    assert answers.calls == 1
    assert isinstance(first[0].content, list)
    same(first, second)
    message = model.invoke("q")
    assert message.content == [{"type": "text", "text": ANSWER, "index": 0}]


class CountingLimiter(BaseRateLimiter):
    """A rate limiter that never waits and counts what it was asked for."""

    acquired: int = 0

    def acquire(self, *, blocking: bool = True) -> bool:
        self.acquired += 1
        return True

    async def aacquire(self, *, blocking: bool = True) -> bool:
        self.acquired += 1
        return True


async def test_hits_are_not_rate_limited(make_cache: Factory) -> None:
    limiter = CountingLimiter()
    model = cached(fake(Answers(), rate_limiter=limiter), cache=make_cache())
    list(model.stream("q"))
    list(model.stream("q"))
    [c async for c in model.astream("q")]
    model.invoke("q")
    assert limiter.acquired == 1  # the one miss
    model.invoke("r")
    await model.ainvoke("r")
    assert limiter.acquired == 2


def test_a_rate_limiter_on_the_wrapper_never_holds_up_a_streamed_invoke_hit(
    make_cache: Factory,
) -> None:
    limiter = CountingLimiter()
    model = CachedChatModel(model=fake(Answers()), cache=make_cache(), rate_limiter=limiter)
    tokens = Tokens()
    # stream=True: LangChain streams the invoke (as it does for LangGraph's messages mode).
    model.invoke("q", config={"callbacks": [tokens]}, stream=True)  # a miss
    model.invoke("q", config={"callbacks": [tokens]}, stream=True)  # a hit, as tokens
    assert limiter.acquired == 0  # the copy that streams carries no limiter of its own
    assert "".join(str(t) for t in tokens.tokens) == ANSWER * 2
    assert len(tokens.tokens) > 4  # token by token, both times


def test_control_applies_to_streams(make_cache: Factory) -> None:
    cache = make_cache()
    answers = Answers()
    model = cached(fake(answers), cache=cache)
    with control(write=False):
        list(model.stream("q"))
    assert len(cache) == 0
    list(model.stream("q"))
    with control(read=False):  # asks the provider again, and stores the new answer
        list(model.stream("q"))
    assert answers.calls == 3
    with control(scope="tenant-a"):
        list(model.stream("q"))
        list(model.stream("q"))
    assert answers.calls == 4
    list(model.stream("q"))
    assert answers.calls == 4


def test_threads_share_one_wrapper(make_cache: Factory) -> None:
    answers = Answers()
    model = cached(fake(answers), cache=make_cache())
    first = list(model.stream("q"))
    with ThreadPoolExecutor(4) as pool:
        replays = list(pool.map(lambda _: list(model.stream("q")), range(8)))
    assert answers.calls == 1
    for replay in replays:
        same(first, replay)


def _only_key(cache: Any, model: CachedChatModel) -> tuple[str, str]:
    from langchain_core.load import dumps

    prompt = dumps([HumanMessage("q")])
    llm_string = model.model._get_llm_string()
    assert cache.lookup(prompt, llm_string) is not None
    return prompt, llm_string


def test_bad_arguments_are_refused() -> None:
    model = fake(Answers())
    with pytest.raises(TypeError, match="BaseChatModel"):
        cached("gpt-4o")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="BaseCache"):
        cached(model, cache={})  # type: ignore[arg-type]
    for delay in (-1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="replay_delay"):
            cached(model, replay_delay=delay)
    with pytest.raises(TypeError, match="replay_delay"):
        cached(model, replay_delay="1")  # type: ignore[arg-type]


class HiddenTools(GenericFakeChatModel):
    """A model whose bind_tools hides itself in a lambda, out of gencache's reach."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return RunnableLambda(self.invoke)


def test_tools_the_wrapper_cannot_rewire_are_refused() -> None:
    with pytest.raises(NotImplementedError):
        cached(fake(Answers())).bind_tools([get_weather])  # the fake has no tools at all
    with pytest.raises(NotImplementedError, match="cannot find the model"):
        cached(HiddenTools(messages=Answers())).bind_tools([get_weather])


def test_wrapping_twice_wraps_the_model_once() -> None:
    inner = fake(Answers())
    twice = cached(cached(inner))
    assert isinstance(twice, CachedChatModel)
    assert twice.model is inner


# -- single-flight: concurrent identical streams, one provider stream ------------------------

# Far above any wait these tests expect: a waiter that was never released waits this long,
# and fails the "released at once" bound (half of it) instead of passing late.
FLIGHT_TIMEOUT = 100.0


class SlowStream(GenericFakeChatModel):
    """Streams word by word, ``delay`` seconds a chunk, sync and async; counts its streams.

    The first ``fail_first`` provider streams raise ``ConnectionError`` after two chunks.
    """

    delay: float = 0.05
    fail_first: int = 0
    streams: int = 0
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def _started(self) -> int:
        with self._lock:
            self.streams += 1
            return self.streams

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        number = self._started()
        for i, chunk in enumerate(super()._stream(messages, stop, run_manager, **kwargs)):
            if i == 2 and number <= self.fail_first:
                msg = "connection reset by peer"
                raise ConnectionError(msg)
            time.sleep(self.delay)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        number = self._started()
        # Without the run manager: an async one, which the sync stream below cannot call.
        for i, chunk in enumerate(super()._stream(messages, stop, **kwargs)):
            if i == 2 and number <= self.fail_first:
                msg = "connection reset by peer"
                raise ConnectionError(msg)
            await asyncio.sleep(self.delay)
            yield chunk


def together(n: int, ask: Callable[[int], Any]) -> list[Any]:
    """``ask(i)`` in ``n`` threads released at once; their results, by ``i``."""
    barrier = threading.Barrier(n)

    def one(i: int) -> Any:
        barrier.wait()
        return ask(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def streamed_text(model: BaseChatModel) -> str:
    try:
        return text(list(model.stream("q")))
    except ConnectionError:
        return "failed"


async def astreamed_text(model: BaseChatModel) -> str:
    try:
        return text([c async for c in model.astream("q")])
    except ConnectionError:
        return "failed"


def test_concurrent_identical_streams_make_one_provider_stream(make_cache: Factory) -> None:
    cache = make_cache(single_flight=True, flight_timeout=FLIGHT_TIMEOUT)
    provider = SlowStream(messages=Answers())
    model = cached(provider, cache=cache)
    results = together(8, lambda _: list(model.stream("q")))
    assert provider.streams == 1
    assert len(results[0]) == WORDS
    assert text(results[0]) == ANSWER
    for chunks in results[1:]:
        same(results[0], chunks)  # the owner's chunks, and the waiters' replays of them
    stats = cache.stats()
    assert (stats.misses, stats.coalesced, stats.updates) == (1, 7, 1)
    assert len(cache) == 1


async def test_concurrent_identical_astreams_make_one_provider_stream(
    make_cache: Factory,
) -> None:
    cache = make_cache(single_flight=True, flight_timeout=FLIGHT_TIMEOUT)
    provider = SlowStream(messages=Answers())
    model = cached(provider, cache=cache)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def consume() -> list[AIMessageChunk]:
        return [c async for c in model.astream("q")]

    ticking = asyncio.create_task(ticker())
    results = await asyncio.gather(*(consume() for _ in range(8)))
    ticking.cancel()
    assert provider.streams == 1
    assert text(results[0]) == ANSWER
    for chunks in results[1:]:
        same(results[0], chunks)
    assert cache.stats().coalesced == 7
    assert ticks > 5  # the loop ran on while seven tasks waited for the owner's stream


async def test_concurrent_identical_astreams_in_a_chain_make_one_provider_stream(
    make_cache: Factory,
) -> None:
    # A chain's astream runs each step of the stream in a task of its own, so the task
    # that looks the key up ends after the first chunk: that must not fail the flight.
    cache = make_cache(single_flight=True, flight_timeout=FLIGHT_TIMEOUT)
    provider = SlowStream(messages=Answers())
    chain = RunnableLambda(lambda q: q) | cached(provider, cache=cache)

    async def consume() -> str:
        return "".join([str(c.content) async for c in chain.astream("q")])

    results = await asyncio.gather(*(consume() for _ in range(4)))
    assert provider.streams == 1
    assert results == [ANSWER] * 4


def test_invoke_and_stream_of_one_request_coalesce(make_cache: Factory) -> None:
    cache = make_cache(single_flight=True, flight_timeout=FLIGHT_TIMEOUT)
    answers = Answers()
    model = cached(SlowStream(messages=answers, delay=0.1), cache=cache)

    def ask(i: int) -> str:
        if i % 2:
            return str(model.invoke("q").content)
        return text(list(model.stream("q")))

    results = together(8, ask)
    assert answers.calls == 1  # whichever came first paid; the others waited for it
    assert set(results) == {ANSWER}


def test_a_failing_owner_stream_releases_the_waiters(make_cache: Factory) -> None:
    cache = make_cache(single_flight=True, flight_timeout=FLIGHT_TIMEOUT)
    provider = SlowStream(messages=Answers(), fail_first=1)
    model = cached(provider, cache=cache)
    start = time.monotonic()
    results = together(8, lambda _: streamed_text(model))
    assert time.monotonic() - start < FLIGHT_TIMEOUT / 2  # released, not timed out
    # The owner's stream failed; the others then streamed from the provider themselves.
    assert sorted(results) == [ANSWER] * 7 + ["failed"]
    assert 2 <= provider.streams <= 8
    assert len(cache) == 1


def test_an_abandoned_owner_stream_releases_the_waiters(make_cache: Factory) -> None:
    cache = make_cache(single_flight=True, flight_timeout=FLIGHT_TIMEOUT)
    provider = SlowStream(messages=Answers())
    model = cached(provider, cache=cache)
    owning = threading.Event()

    def owner() -> None:
        stream = model.stream("q")
        next(stream)  # the lookup: this stream owns the key
        owning.set()
        time.sleep(0.3)  # the others reach their lookups and wait
        stream.close()  # type: ignore[attr-defined]  # the consumer stops reading

    def waiter() -> str:
        owning.wait()
        return text(list(model.stream("q")))

    start = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        owned = pool.submit(owner)
        results = [f.result() for f in [pool.submit(waiter) for _ in range(7)]]
    owned.result()
    assert time.monotonic() - start < FLIGHT_TIMEOUT / 2
    assert results == [ANSWER] * 7
    assert provider.streams >= 2
    assert len(cache) == 1


async def test_a_failing_owner_astream_releases_the_waiters(make_cache: Factory) -> None:
    cache = make_cache(single_flight=True, flight_timeout=FLIGHT_TIMEOUT)
    provider = SlowStream(messages=Answers(), fail_first=1)
    model = cached(provider, cache=cache)
    results: list[str] = []
    everyone = asyncio.Event()

    async def ask() -> None:
        results.append(await astreamed_text(model))
        if len(results) == 8:
            everyone.set()
        await everyone.wait()  # no task ends early: only the failure itself can release

    start = time.monotonic()
    await asyncio.gather(*(ask() for _ in range(8)))
    assert time.monotonic() - start < FLIGHT_TIMEOUT / 2
    assert sorted(results) == [ANSWER] * 7 + ["failed"]


async def test_an_astream_left_by_break_releases_the_waiters(make_cache: Factory) -> None:
    cache = make_cache(single_flight=True, flight_timeout=FLIGHT_TIMEOUT)
    provider = SlowStream(messages=Answers())
    model = cached(provider, cache=cache)
    owning, finished = asyncio.Event(), asyncio.Event()

    async def owner() -> None:
        async for _ in model.astream("q"):
            owning.set()
            await asyncio.sleep(0.3)  # the others reach their lookups and wait
            break  # asyncio closes the stream later, in a task of its own
        await finished.wait()  # this task lives on: its end releases nothing in time

    async def waiter() -> str:
        await owning.wait()
        return text([c async for c in model.astream("q")])

    owned = asyncio.create_task(owner())
    start = time.monotonic()
    results = await asyncio.gather(*(waiter() for _ in range(7)))
    finished.set()
    await owned
    assert time.monotonic() - start < FLIGHT_TIMEOUT / 2
    assert results == [ANSWER] * 7
    assert len(cache) == 1


def test_without_single_flight_concurrent_streams_each_call_the_provider(
    make_cache: Factory,
) -> None:
    provider = SlowStream(messages=Answers())
    model = cached(provider, cache=make_cache())
    results = together(4, lambda _: streamed_text(model))
    assert results == [ANSWER] * 4
    assert provider.streams == 4


# -- langchain-openai over httpx.MockTransport --------------------------------------------


class City(BaseModel):
    """The structured answer."""

    city: str


CITY_JSON = City(city="Paris").model_dump_json()


@dataclass
class StreamingOpenAI:
    """A ``chat.completions`` endpoint answering ``stream=True`` with SSE, counted.

    A request with tools gets one call of the first tool, its arguments streamed in
    pieces; one with a ``response_format`` gets ``CITY_JSON``; any other gets ``ANSWER``,
    in three pieces. With ``stream_options.
    include_usage`` the last event carries the usage, with no choices, as OpenAI sends it.
    Non-streaming requests get the same answer as one JSON body.
    """

    requests: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path.endswith("/chat/completions"), request.url
        body = json.loads(request.content)
        self.requests.append(body)
        # A tool's result is answered in words (as a model does): an agent loop ends.
        tools = body.get("tools") if body["messages"][-1]["role"] != "tool" else None
        answer = CITY_JSON if body.get("response_format") else ANSWER
        if not body.get("stream"):
            return httpx.Response(200, json=self._completion(tools, answer))
        events = self._chunks(tools, answer)
        if body.get("stream_options", {}).get("include_usage"):
            events.append(self._event(None, usage=True))
        sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        return httpx.Response(200, text=sse, headers={"content-type": "text/event-stream"})

    def _event(
        self, delta: dict[str, Any] | None, finish: str | None = None, *, usage: bool = False
    ) -> dict[str, Any]:
        event: dict[str, Any] = {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion.chunk",
            "created": 1_714_564_800,
            "model": "gpt-4o-mini-2024-07-18",
            "system_fingerprint": "fp_test",
            "choices": []
            if delta is None
            else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if usage:
            event["usage"] = {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}
        return event

    def _chunks(self, tools: list[dict[str, Any]] | None, answer: str) -> list[dict[str, Any]]:
        if not tools:
            third = len(answer) // 3
            pieces = [answer[:third], answer[third : 2 * third], answer[2 * third :]]
            return [
                self._event({"role": "assistant", "content": ""}),
                *(self._event({"content": piece}) for piece in pieces),
                self._event({}, "stop"),
            ]
        name = tools[0]["function"]["name"]
        call = {"index": 0, "id": "call_1", "type": "function"}
        pieces = ['{"ci', 'ty": "Pa', 'ris"}']
        return [
            self._event(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{**call, "function": {"name": name, "arguments": ""}}],
                }
            ),
            *(
                self._event({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
                for piece in pieces
            ),
            self._event({}, "tool_calls"),
        ]

    def _completion(self, tools: list[dict[str, Any]] | None, answer: str) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": answer, "refusal": None}
        if tools:
            message["content"] = None
            message["tool_calls"] = [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {
                        "name": tools[0]["function"]["name"],
                        "arguments": '{"city": "Paris"}',
                    },
                }
            ]
        return {
            "id": "chatcmpl-0",
            "object": "chat.completion",
            "created": 1_714_564_800,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
        }


@pytest.fixture
def openai() -> StreamingOpenAI:
    return StreamingOpenAI()


@pytest.fixture
def chat_openai(openai: StreamingOpenAI) -> Iterator[Any]:
    """Build a ``ChatOpenAI`` whose sync and async clients reach ``openai``."""
    clients: list[httpx.Client] = []

    def make(**options: Any) -> ChatOpenAI:
        sync = httpx.Client(transport=httpx.MockTransport(openai))
        clients.append(sync)
        return ChatOpenAI(
            model="gpt-4o-mini",
            api_key="sk-test",  # type: ignore[arg-type]  # pydantic coerces it to SecretStr
            base_url="https://api.openai.test/v1",
            http_client=sync,
            http_async_client=httpx.AsyncClient(transport=httpx.MockTransport(openai)),
            max_retries=0,
            **options,
        )

    yield make
    for client in clients:
        client.close()


def get_weather(city: str) -> str:
    """Get the weather in a city."""
    return f"Sunny in {city}"


def test_an_agent_on_the_cached_model_runs_from_the_cache_the_second_time(
    make_cache: Factory, openai: StreamingOpenAI, chat_openai: Any
) -> None:
    # LangGraph's prebuilt ReAct agent: a tool call, the tool's result, the answer. Its
    # second run asks the provider nothing, whether invoked or streamed token by token.
    from langgraph.prebuilt import create_react_agent

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # moved to langchain.agents
        agent = create_react_agent(cached(chat_openai(), cache=make_cache()), [get_weather])
    question = {"messages": [("user", "Weather in Paris?")]}
    first = agent.invoke(question)
    assert len(openai.requests) == 2  # the tool call, then the answer
    assert first["messages"][2].content == "Sunny in Paris"  # the tool ran
    second = agent.invoke(question)
    assert len(openai.requests) == 2
    assert [m.content for m in second["messages"]] == [m.content for m in first["messages"]]
    assert second["messages"][1].tool_calls[0]["args"] == {"city": "Paris"}
    # Streamed the first time too: the second stream replays the provider's pieces.
    streamed = [
        _agent_tokens(agent, {"messages": [("user", f"Weather in Rome? {n}")]}) for n in (1, 1)
    ]
    assert len(openai.requests) == 4
    assert streamed[0] == streamed[1]
    assert len([t for t in streamed[1] if t]) == 3  # the provider's three pieces
    assert "".join(streamed[1]) == ANSWER


async def test_an_agent_streamed_async_replays_its_tokens_on_the_second_run(
    make_cache: Factory, openai: StreamingOpenAI, chat_openai: Any
) -> None:
    from langgraph.prebuilt import create_react_agent

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        agent = create_react_agent(cached(chat_openai(), cache=make_cache()), [get_weather])
    question = {"messages": [("user", "Weather in Paris?")]}
    runs: list[list[str]] = []
    for _ in range(2):
        tokens: list[str] = []
        events: AsyncIterator[Any] = agent.astream(question, stream_mode="messages")
        async for chunk, meta in events:
            if meta["langgraph_node"] == "agent" and isinstance(chunk.content, str):
                tokens.append(chunk.content)
        runs.append(tokens)
    assert len(openai.requests) == 2  # the first run's two model calls only
    assert runs[0] == runs[1]
    assert len([t for t in runs[1] if t]) == 3


def _agent_tokens(agent: Any, question: dict[str, Any]) -> list[str]:
    return [
        chunk.content
        for chunk, meta in agent.stream(question, stream_mode="messages")
        if meta["langgraph_node"] == "agent" and isinstance(chunk.content, str)
    ]


@pytest.mark.parametrize("stream_usage", [False, True])
def test_openai_repeated_stream_is_one_request(
    make_cache: Factory, openai: StreamingOpenAI, chat_openai: Any, stream_usage: bool
) -> None:
    model = cached(chat_openai(stream_usage=stream_usage), cache=make_cache())
    first = list(model.stream("What is the capital of France?"))
    second = list(model.stream("What is the capital of France?"))
    assert len(openai.requests) == 1
    assert openai.requests[0]["stream"] is True
    same(first, second)
    assert text(second) == ANSWER
    assert second[-1].chunk_position == "last"
    assert {c.response_metadata.get("finish_reason") for c in second} == {None, "stop"}
    with_usage = [i for i, c in enumerate(second) if c.usage_metadata]
    if stream_usage:
        # On the provider's last chunk, as OpenAI sent it (LangChain then adds an empty
        # closing chunk), and only there.
        assert with_usage == [len(second) - 2]
        assert second[-2].usage_metadata == first[-2].usage_metadata
        usage = second[-2].usage_metadata
        assert usage is not None
        assert (usage["input_tokens"], usage["output_tokens"]) == (12, 9)
    else:
        assert with_usage == []


async def test_openai_repeated_astream_is_one_request(
    make_cache: Factory, openai: StreamingOpenAI, chat_openai: Any
) -> None:
    model = cached(chat_openai(stream_usage=True), cache=make_cache())
    first = [c async for c in model.astream("What is the capital of France?")]
    second = [c async for c in model.astream("What is the capital of France?")]
    assert len(openai.requests) == 1
    same(first, second)


def test_openai_tool_call_streamed_in_pieces_is_replayed_in_pieces(
    make_cache: Factory, openai: StreamingOpenAI, chat_openai: Any
) -> None:
    model = cached(chat_openai(stream_usage=True), cache=make_cache()).bind_tools([get_weather])
    first = chunks_of(model.stream("Weather in Paris?"))
    second = chunks_of(model.stream("Weather in Paris?"))
    assert len(openai.requests) == 1
    # bind_tools went through the wrapped model: the schema reached the provider.
    assert openai.requests[0]["tools"][0]["function"]["name"] == "get_weather"
    same(first, second)
    pieces = [c.tool_call_chunks for c in second]
    assert pieces == [c.tool_call_chunks for c in first]
    assert [p[0]["args"] for p in pieces if p] == ["", '{"ci', 'ty": "Pa', 'ris"}']
    merged = second[0]
    for chunk in second[1:]:
        merged += chunk
    assert merged.tool_calls == [
        {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1", "type": "tool_call"}
    ]
    assert merged.usage_metadata is not None
    assert merged.usage_metadata["total_tokens"] == 21
    invoked = model.invoke("Weather in Paris?")  # the same entry, merged
    assert len(openai.requests) == 1
    assert invoked.tool_calls == merged.tool_calls


def test_openai_stream_then_invoke_returns_the_merged_message(
    make_cache: Factory, openai: StreamingOpenAI, chat_openai: Any
) -> None:
    cache = make_cache()
    model = cached(chat_openai(stream_usage=True), cache=cache)
    chunks = list(model.stream("What is the capital of France?"))
    message = model.invoke("What is the capital of France?")
    plain = chat_openai(stream_usage=True, cache=cache).invoke("What is the capital of France?")
    assert len(openai.requests) == 1
    for answer in (message, plain):
        assert type(answer) is AIMessage
        assert answer.content == text(chunks)
        assert answer.response_metadata["finish_reason"] == "stop"
        assert answer.usage_metadata is not None
        assert answer.usage_metadata["total_tokens"] == 21


def test_openai_stream_after_invoke_hits_replays_the_providers_usage(
    make_cache: Factory, openai: StreamingOpenAI, chat_openai: Any
) -> None:
    model = cached(chat_openai(), cache=make_cache())
    model.invoke("What is the capital of France?")
    model.invoke("What is the capital of France?")
    chunks = list(model.stream("What is the capital of France?"))
    assert len(openai.requests) == 1
    usage = chunks[0].usage_metadata
    assert usage is not None
    assert usage == {"input_tokens": 12, "output_tokens": 9, "total_tokens": 21} | {
        k: v for k, v in usage.items() if k.endswith("_details")
    }


def test_openai_entry_of_the_plain_model_is_a_stream_hit(
    make_cache: Factory, openai: StreamingOpenAI, chat_openai: Any
) -> None:
    cache = make_cache()
    plain = chat_openai(cache=cache).invoke("What is the capital of France?")
    chunks = list(cached(chat_openai(), cache=cache).stream("What is the capital of France?"))
    assert len(openai.requests) == 1
    assert openai.requests[0]["stream"] is False
    assert text(chunks) == plain.content == ANSWER


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
def test_openai_structured_output_is_cached(
    make_cache: Factory, openai: StreamingOpenAI, chat_openai: Any, method: str
) -> None:
    model = cached(chat_openai(), cache=make_cache())
    structured = model.with_structured_output(City, method=method)
    first = structured.invoke("Capital of France?")
    second = structured.invoke("Capital of France?")
    streamed = list(structured.stream("Capital of France?"))
    raw = model.with_structured_output(City, method=method, include_raw=True)
    with_raw = raw.invoke("Capital of France?")
    assert first == second == City(city="Paris")
    assert streamed[-1] == City(city="Paris")
    assert isinstance(with_raw, dict)
    assert with_raw["parsed"] == City(city="Paris")
    # invoke and stream are one request each way at most: the stream reads the invoke's.
    assert len(openai.requests) == 1
    if method == "function_calling":
        assert openai.requests[0]["tools"][0]["function"]["name"] == "City"
    else:
        assert openai.requests[0]["response_format"]["type"] == "json_schema"


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
# langchain-openai's own _stream warns while dumping a json_schema response (not ours).
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")
def test_openai_structured_output_stream_first_then_invoke(
    make_cache: Factory, openai: StreamingOpenAI, chat_openai: Any, method: str
) -> None:
    model = cached(chat_openai(), cache=make_cache())
    structured = model.with_structured_output(City, method=method)
    streamed = list(structured.stream("Capital of France?"))  # a miss: SSE tool call pieces
    again = list(structured.stream("Capital of France?"))
    invoked = structured.invoke("Capital of France?")
    assert len(openai.requests) == 1
    assert openai.requests[0]["stream"] is True
    assert streamed[-1] == again[-1] == invoked == City(city="Paris")


def test_openai_replayed_chunks_are_copies(
    make_cache: Factory, openai: StreamingOpenAI, chat_openai: Any
) -> None:
    model = cached(chat_openai(stream_usage=True), cache=make_cache())
    first = list(model.stream("q"))
    first[0].response_metadata["changed"] = "by the consumer"
    second = list(model.stream("q"))
    second[-2].usage_metadata["input_tokens"] = -1  # type: ignore[index]
    second[0].response_metadata["changed"] = "again"
    third = list(model.stream("q"))
    assert len(openai.requests) == 1
    assert "changed" not in third[0].response_metadata
    usage = third[-2].usage_metadata
    assert usage is not None
    assert usage["input_tokens"] == 12


def test_openai_traces_name_the_wrapped_model(chat_openai: Any) -> None:
    inner = chat_openai()
    model = cached(inner)
    assert model._llm_type == inner._llm_type
    assert model._get_ls_params()["ls_provider"] == "openai"
    assert model._get_llm_string() == inner._get_llm_string()


def test_token_counts_are_the_wrapped_models() -> None:
    inner = fake(Answers(), custom_get_token_ids=lambda text: list(range(len(text.split()))))
    assert cached(inner).get_num_tokens("one two three") == 3


async def test_openai_astream_events_show_a_hit(
    make_cache: Factory, openai: StreamingOpenAI, chat_openai: Any
) -> None:
    model = cached(chat_openai(stream_usage=True), cache=make_cache())
    cold = [e async for e in model.astream_events("q", version="v2")]
    warm = [e async for e in model.astream_events("q", version="v2")]
    assert len(openai.requests) == 1
    assert [e["event"] for e in warm] == [e["event"] for e in cold]
    assert sum(e["event"] == "on_chat_model_stream" for e in warm) == 7
    assert {e["name"] for e in warm} == {"ChatOpenAI"}


# -- canonical keys and accounting for streamed conversations --------------------------------


def _streamed_conversation(model: BaseChatModel, turns: int) -> list[BaseMessage]:
    """``turns`` streamed turns, each answer merged from its chunks and kept as history."""
    history: list[BaseMessage] = [HumanMessage("You are terse. Hello.")]
    for turn in range(turns):
        history.append(HumanMessage(f"question {turn}"))
        chunks = chunks_of(model.stream(history))
        merged = chunks[0]
        for chunk in chunks[1:]:
            merged += chunk
        history.append(merged)
    return history


def test_openai_a_streamed_conversation_run_twice_hits_every_turn(
    make_cache: Factory, openai: StreamingOpenAI, chat_openai: Any
) -> None:
    # Each streamed answer kept as history carries the provider's usage, fingerprint and
    # response id, and a replay its own run id: the next turn's key is the same anyway.
    cache = make_cache()
    model = cached(chat_openai(stream_usage=True), cache=cache)
    first = _streamed_conversation(model, 4)
    assert len(openai.requests) == 4
    last = first[-1]
    assert isinstance(last, AIMessageChunk)
    assert last.usage_metadata is not None
    assert last.response_metadata["system_fingerprint"] == "fp_test"
    assert last.id is not None
    second = _streamed_conversation(model, 4)
    assert len(openai.requests) == 4  # every turn of the second run hit
    assert [m.content for m in second] == [m.content for m in first]
    assert first[2].id != second[2].id  # the ids differ, and still every turn hit
    stats = cache.stats()
    assert (stats.hits, stats.misses) == (4, 4)
    saved = stats.saved  # stream hits count as saved calls and tokens
    assert (saved.calls, saved.input_tokens, saved.output_tokens) == (4, 4 * 12, 4 * 9)


def test_a_streamed_conversation_with_the_fake_model_hits_every_turn(
    make_cache: Factory,
) -> None:
    cache = make_cache()
    answers = Answers()
    model = cached(fake(answers), cache=cache)
    _streamed_conversation(model, 3)
    assert answers.calls == 3
    _streamed_conversation(model, 3)
    assert answers.calls == 3
    assert cache.stats().saved.calls == 3


def _invoked_conversation(model: BaseChatModel, turns: int) -> list[BaseMessage]:
    """:func:`_streamed_conversation`, with ``invoke``: each answer an ``AIMessage``."""
    history: list[BaseMessage] = [HumanMessage("You are terse. Hello.")]
    for turn in range(turns):
        history.append(HumanMessage(f"question {turn}"))
        history.append(model.invoke(history))
    return history


@pytest.mark.parametrize(
    "streamed_first", [True, False], ids=["stream-then-invoke", "invoke-then-stream"]
)
def test_openai_a_conversation_streamed_once_and_invoked_once_hits_every_turn(
    make_cache: Factory, openai: StreamingOpenAI, chat_openai: Any, streamed_first: bool
) -> None:
    # A streamed answer in the history is an AIMessageChunk (its own class, type and
    # chunk_position), an invoked one an AIMessage: the provider receives the same message,
    # so the next turn's key is the same.
    cache = make_cache()
    model = cached(chat_openai(stream_usage=True), cache=cache)
    runs = [_streamed_conversation, _invoked_conversation]
    if not streamed_first:
        runs.reverse()
    first = runs[0](model, 4)
    assert len(openai.requests) == 4
    second = runs[1](model, 4)
    assert len(openai.requests) == 4  # every turn of the other run hit
    assert [m.content for m in second] == [m.content for m in first]
    assert {type(m) for m in first[2::2]} != {type(m) for m in second[2::2]}


def test_a_conversation_streamed_then_invoked_with_the_fake_model_hits_every_turn(
    make_cache: Factory,
) -> None:
    answers = Answers()
    model = cached(fake(answers), cache=make_cache())
    _streamed_conversation(model, 3)
    _invoked_conversation(model, 3)
    assert answers.calls == 3


async def _astreamed_conversation(model: BaseChatModel, turns: int) -> list[BaseMessage]:
    """:func:`_streamed_conversation` through ``astream``."""
    history: list[BaseMessage] = [HumanMessage("You are terse. Hello.")]
    for turn in range(turns):
        history.append(HumanMessage(f"question {turn}"))
        chunks = [chunk async for chunk in model.astream(history)]
        merged = chunks[0]
        for chunk in chunks[1:]:
            merged += chunk
        history.append(merged)
    return history


async def test_openai_an_astreamed_conversation_run_twice_hits_every_turn(
    make_cache: Factory, openai: StreamingOpenAI, chat_openai: Any
) -> None:
    cache = make_cache()
    model = cached(chat_openai(stream_usage=True), cache=cache)
    first = await _astreamed_conversation(model, 4)
    assert len(openai.requests) == 4
    second = await _astreamed_conversation(model, 4)
    assert len(openai.requests) == 4  # every turn of the second run hit
    assert [m.content for m in second] == [m.content for m in first]
    # And the same conversation through invoke: the streamed history keys the same.
    _invoked_conversation(model, 4)
    assert len(openai.requests) == 4
    stats = cache.stats()
    assert (stats.hits, stats.misses) == (8, 4)
