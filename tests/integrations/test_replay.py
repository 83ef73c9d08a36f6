"""``gencache.testing``: strict replay of LLM calls in test suites.

Two layers. :class:`ReplayCache` is tested directly (modes, file format, keys, streams,
secrets, the network), with a chat model that echoes its prompt and counts its calls, and
with the real ``langchain-openai`` ``ChatOpenAI`` over ``httpx.MockTransport``. The pytest
plugin (fixture, marker, option, defaults) is tested as a user meets it: ``pytester`` runs
test files that use it, in record, replay and auto mode, and reads their outcome.

Every call path is checked to let :class:`ReplayMiss` reach the test unchanged, and to
make no provider call: a miss is raised from the cache lookup, before the provider.
"""

from __future__ import annotations

import asyncio
import copy
import importlib.metadata
import json
import re
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from langchain_core.globals import get_llm_cache, set_llm_cache
from langchain_core.language_models import BaseChatModel, FakeListLLM
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableLambda
from langchain_openai import ChatOpenAI
from pydantic import Field

from gencache import GenCacheError, InMemoryCache
from gencache.langchain import cached
from gencache.testing import (
    ReplayCache,
    ReplayError,
    ReplayMiss,
    ReplayMode,
    SecretInRecordingError,
    default_path,
)

pytest_plugins = ["pytester"]

QUESTION = "What is the capital of France?"
OPENAI_KEY = "sk-proj-" + "Q7xZ2vLm9KpR4tWn8YbC3dFh6JsA1eGu5HqT0oIi"  # shaped as a real key


class Echo(BaseChatModel):
    """Answers ``echo: <last message>``, streamed word by word; records each call it serves."""

    calls: list[str] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "echo"

    def _answer(self, messages: list[BaseMessage]) -> str:
        self.calls.append(str(messages[-1].content))
        return f"echo: {messages[-1].content}"

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        message = AIMessage(content=self._answer(messages))
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self, messages: list[BaseMessage], *args: Any, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        for piece in re.split(r"(\s+)", self._answer(messages)):
            if piece:
                yield ChatGenerationChunk(message=AIMessageChunk(content=piece))


@dataclass
class FakeOpenAI:
    """``POST /chat/completions``: the answer as JSON, or as SSE chunks for ``stream=True``."""

    answer: str = "Paris."
    requests: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append(body)
        head: dict[str, Any] = {"id": f"chatcmpl-{len(self.requests)}", "created": 1_714_564_800}
        head["model"] = "gpt-4o-mini-2024-07-18"
        if not body.get("stream"):
            message = {"role": "assistant", "content": self.answer}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            usage = {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
            return httpx.Response(
                200,
                json={**head, "object": "chat.completion", "choices": [choice], "usage": usage},
            )
        pieces = [{"role": "assistant", "content": ""}] + [
            {"content": word} for word in re.split(r"(\s+)", self.answer) if word
        ]
        events = [
            {
                **head,
                "object": "chat.completion.chunk",
                "choices": [
                    {"index": 0, "delta": delta, "finish_reason": None if delta else "stop"}
                ],
            }
            for delta in [*pieces, {}]  # the last, empty delta ends the stream
        ]
        sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        return httpx.Response(200, text=sse, headers={"content-type": "text/event-stream"})


def openai_model(provider: FakeOpenAI | None = None, **options: Any) -> ChatOpenAI:
    """A real ``ChatOpenAI``; over ``provider`` if given, else over the default transport."""
    clients: dict[str, Any] = {}
    if provider is not None:
        clients["http_client"] = httpx.Client(transport=httpx.MockTransport(provider))
        clients["http_async_client"] = httpx.AsyncClient(transport=httpx.MockTransport(provider))
    return ChatOpenAI(
        model="gpt-4o-mini",
        api_key=options.pop("api_key", "sk-test"),
        base_url="https://api.openai.test/v1",
        max_retries=0,
        **clients,
        **options,
    )


@pytest.fixture(autouse=True)
def restore_global_cache() -> Iterator[None]:
    previous = get_llm_cache()
    yield
    set_llm_cache(previous)


def use(path: Path, mode: ReplayMode, **options: Any) -> ReplayCache:
    """A ``ReplayCache`` set as LangChain's global cache, as the plugin's fixture does."""
    cache = ReplayCache(path, mode, **options)
    set_llm_cache(cache)
    return cache


def record(path: Path, *prompts: str, model: BaseChatModel | None = None) -> None:
    cache = use(path, "record")
    for prompt in prompts:
        (model or Echo()).invoke(prompt)
    assert cache.save()


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- the modes ---------------------------------------------------------------------------


def test_record_then_replay_answers_from_the_file_with_no_provider_call(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    recorder = Echo()
    record(path, QUESTION, "And of Spain?", model=recorder)
    assert recorder.calls == [QUESTION, "And of Spain?"]

    cache = use(path, "replay")
    model = Echo()
    assert model.invoke(QUESTION).content == f"echo: {QUESTION}"
    assert model.invoke("And of Spain?").content == "echo: And of Spain?"
    assert model.calls == []
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.updates, stats.size) == (2, 0, 0, 2)
    assert cache.save() is False  # replay never writes


def test_auto_replays_hits_and_records_misses(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    record(path, QUESTION)
    cache = use(path, "auto")
    model = Echo()
    model.invoke(QUESTION)
    model.invoke("And of Spain?")
    assert model.calls == ["And of Spain?"]
    assert (cache.stats().hits, cache.stats().misses, cache.stats().updates) == (1, 1, 1)
    assert cache.save()
    assert [line["messages"][0]["kwargs"]["content"] for line in lines(path)] == [
        "And of Spain?",
        QUESTION,
    ]

    use(path, "replay")
    again = Echo()
    again.invoke(QUESTION)
    again.invoke("And of Spain?")
    assert again.calls == []


def test_record_calls_the_provider_every_time_and_keeps_only_what_it_recorded(
    tmp_path: Path,
) -> None:
    path = tmp_path / "rec.jsonl"
    record(path, QUESTION, "A stale question")
    cache = use(path, "record")
    model = Echo()
    model.invoke(QUESTION)
    model.invoke(QUESTION)
    assert model.calls == [QUESTION, QUESTION]  # recorded, but never replayed
    assert cache.save()
    assert [line["messages"][0]["kwargs"]["content"] for line in lines(path)] == [QUESTION]

    record(tmp_path / "other.jsonl", "A stale question")
    kept = use(tmp_path / "other.jsonl", "record", keep_existing=True)
    Echo().invoke(QUESTION)
    assert kept.save()
    assert len(lines(tmp_path / "other.jsonl")) == 2


def test_record_that_records_nothing_leaves_the_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    record(path, QUESTION)
    before = path.read_bytes()
    assert use(path, "record").save() is False
    assert path.read_bytes() == before
    assert use(tmp_path / "absent.jsonl", "auto").save() is False
    assert not (tmp_path / "absent.jsonl").exists()


def test_a_save_that_failed_is_done_by_the_next(tmp_path: Path) -> None:
    blocker = tmp_path / "recordings"
    blocker.write_text("a file where the directory should be")
    cache = use(blocker / "rec.jsonl", "record")
    Echo().invoke(QUESTION)
    with pytest.raises(OSError, match="recordings"):
        cache.save()
    blocker.unlink()
    assert cache.save()
    assert len(lines(blocker / "rec.jsonl")) == 1
    assert cache.save() is False


def test_update_in_replay_mode_is_ignored_and_clear_keeps_the_recording(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    record(path, QUESTION)
    cache = use(path, "replay")
    generations = [ChatGeneration(message=AIMessage(content="x"))]
    cache.update("another prompt", "llm", generations)
    cache.clear()
    asyncio.run(cache.aclear())
    assert len(cache) == 1
    assert cache.stats().skipped == 1
    assert Echo().invoke(QUESTION).content == f"echo: {QUESTION}"
    with pytest.raises(ReplayMiss):
        cache.lookup("another prompt", "llm")


# -- a miss: ReplayMiss, unchanged, before any provider call -----------------------------


async def _astream(model: BaseChatModel, prompt: str) -> list[Any]:
    return [chunk async for chunk in model.astream(prompt)]


async def _complete(result: Any) -> Any:
    return await result if isinstance(result, Awaitable) else result


CALLS: dict[str, Callable[[BaseChatModel, str], Any]] = {
    "invoke": lambda m, p: m.invoke(p),
    "ainvoke": lambda m, p: m.ainvoke(p),
    "batch": lambda m, p: m.batch([QUESTION, p]),
    "abatch": lambda m, p: m.abatch([QUESTION, p]),
    "stream-cached": lambda m, p: list(cached(m).stream(p)),
    "astream-cached": lambda m, p: _astream(cached(m), p),
    "invoke-cached": lambda m, p: cached(m).invoke(p),
    "ainvoke-cached": lambda m, p: cached(m).ainvoke(p),
    "with-retry": lambda m, p: m.with_retry(stop_after_attempt=3).invoke(p),
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
@pytest.mark.parametrize("provider", ["echo", "openai"])
async def test_a_miss_raises_replay_miss_unchanged_and_calls_no_provider(
    tmp_path: Path, call: Callable[[BaseChatModel, str], Any], provider: str
) -> None:
    path = tmp_path / "rec.jsonl"
    echo, api = Echo(), FakeOpenAI()
    model: BaseChatModel = echo if provider == "echo" else openai_model(api)
    record(path, QUESTION, model=model)
    made = len(echo.calls) + len(api.requests)

    cache = use(path, "replay")
    with pytest.raises(ReplayMiss) as info:
        await _complete(call(model, "What is the capital of Spain?"))
    assert info.type is ReplayMiss  # not wrapped by LangChain
    assert "prompt: message 1 (human) content differs at char 23" in str(info.value)
    assert len(echo.calls) + len(api.requests) == made
    assert info.value in cache.raised


def _fallback(_: Any) -> AIMessage:
    return AIMessage(content="a fallback answer")


def _catching(model: BaseChatModel, prompt: str) -> Any:
    try:  # application code that turns provider errors into an answer
        return model.invoke(prompt)
    except Exception:
        return "Sorry, the assistant is unavailable."


CATCHING: dict[str, Callable[[BaseChatModel, str], Any]] = {
    "batch-return-exceptions": lambda m, p: m.batch([p], return_exceptions=True)[0],
    "with-fallbacks": lambda m, p: m.with_fallbacks([RunnableLambda(_fallback)]).invoke(p),
    "except-exception": _catching,
}


@pytest.mark.parametrize("call", CATCHING.values(), ids=CATCHING.keys())
def test_a_miss_that_the_code_catches_is_still_kept(
    tmp_path: Path, call: Callable[[BaseChatModel, str], Any]
) -> None:
    path = tmp_path / "rec.jsonl"
    record(path, QUESTION)
    cache = use(path, "replay")
    model = Echo()
    result = call(model, "What is the capital of Spain?")
    assert model.calls == []
    (miss,) = cache.raised  # the plugin fails the test with it (see the pytester test)
    assert type(miss) is ReplayMiss
    assert result is miss or result != f"echo: {QUESTION}"


def test_replay_errors_are_gencache_errors() -> None:
    assert issubclass(ReplayMiss, ReplayError)
    assert issubclass(SecretInRecordingError, ReplayError)
    assert issubclass(ReplayError, GenCacheError)
    assert ReplayMiss.__module__ == "gencache.testing"


def test_replay_miss_shows_the_differing_text_and_how_to_record(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    record(path, QUESTION, "Something else entirely")
    use(path, "replay")
    with pytest.raises(ReplayMiss) as info:
        Echo().invoke("What is the capital of Spain?")
    text = str(info.value)
    assert text.splitlines() == [
        f"no recorded response for this request in {path} (mode: replay).",
        "The nearest differs:",
        "  - prompt: message 1 (human) content differs at char 23",
        "  message 1 (human), from char 3:",
        "      request:  ...'t is the capital of Spain?'",
        "      recorded: ...'t is the capital of France?'",
        "Record it with --llm-replay=auto (adds new requests to the file) or "
        "--llm-replay=record (re-records the whole file).",
    ]
    assert info.value.path == path
    assert info.value.differences == ("prompt: message 1 (human) content differs at char 23",)
    copied = copy.deepcopy(info.value)  # as tracers and error reporters may
    assert (str(copied), copied.path, copied.differences) == (
        text,
        path,
        info.value.differences,
    )


def test_replay_miss_names_a_changed_setting_of_the_same_prompt(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    provider = FakeOpenAI()
    record(path, QUESTION, model=openai_model(provider, temperature=0.0))
    cache = use(path, "auto")
    openai_model(provider, temperature=0.7).invoke("Another question")
    cache.save()

    use(path, "replay")
    with pytest.raises(ReplayMiss) as info:
        openai_model(provider, temperature=0.7).invoke(QUESTION)
    # Both recorded entries differ in one field; the one with the same prompt is nearest.
    assert info.value.differences == ("llm_string: temperature 0.7 != 0.0",)


def test_replay_miss_says_when_there_is_no_recording(tmp_path: Path) -> None:
    use(tmp_path / "none.jsonl", "replay")
    with pytest.raises(ReplayMiss, match="the file does not exist") as info:
        Echo().invoke(QUESTION)
    assert info.value.differences == ()


def test_explain_agrees_with_replay_and_names_the_difference(tmp_path: Path) -> None:
    from langchain_core.outputs import Generation

    path = tmp_path / "rec.jsonl"
    recorder = ReplayCache(path, "record")
    recorder.update("What is 2 + 2?", "model-a", [Generation(text="4")])
    assert recorder.save()
    cache = ReplayCache(path, "replay")
    assert cache.explain("What is 2 + 2?", "model-a").hit
    assert cache.lookup("What is 2 + 2?", "model-a") == [Generation(text="4")]
    why = cache.explain("What is 2 + 3?", "model-a")
    assert not why.hit
    assert any("prompt" in d for d in why.differences), why
    with pytest.raises(ReplayMiss):
        cache.lookup("What is 2 + 3?", "model-a")
    assert not ReplayCache(path, "record").explain("What is 2 + 2?", "model-a").hit
    assert not ReplayCache(tmp_path / "none.jsonl", "replay").explain("x", "y").hit


# -- keys: canonical prompts ---------------------------------------------------------------


def test_ids_and_metadata_of_earlier_turns_never_make_a_recording_stale(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"

    def conversation(turn: AIMessage) -> list[BaseMessage]:
        return [HumanMessage(QUESTION), turn, HumanMessage("And its population?")]

    recorded = AIMessage(
        content="Paris.",
        id="run-1",
        usage_metadata={"input_tokens": 7, "output_tokens": 2, "total_tokens": 9},
        response_metadata={"model_name": "gpt-4o-mini", "system_fingerprint": "fp_1"},
    )
    cache = use(path, "record")
    Echo().invoke(conversation(recorded))
    cache.save()

    use(path, "replay")
    replayed = AIMessage(
        content="Paris.",
        id="lc_run--other",
        usage_metadata={"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
        response_metadata={"model_name": "gpt-4o-mini", "from_cache": True},
    )
    model = Echo()
    assert model.invoke(conversation(replayed)).content == "echo: And its population?"
    assert model.calls == []
    with pytest.raises(ReplayMiss, match=r"message 2 \(ai\) content differs at char 0"):
        model.invoke(conversation(AIMessage(content="Lyon.")))


# -- the file ----------------------------------------------------------------------------


def test_the_file_is_sorted_stable_and_one_ascii_json_object_per_line(tmp_path: Path) -> None:
    prompts = ["Zebra?", "Café ☕ ?", "Apple?", "Mango?"]
    record(tmp_path / "a.jsonl", *prompts)
    record(tmp_path / "b.jsonl", *reversed(prompts))
    text = (tmp_path / "a.jsonl").read_bytes()
    assert text == (tmp_path / "b.jsonl").read_bytes()  # same requests, same bytes
    assert text.isascii()
    assert text.endswith(b"\n")
    assert b"lc_run" not in text  # LangChain's run ids are not recorded
    rows = lines(tmp_path / "a.jsonl")
    assert [r["messages"][0]["kwargs"]["content"] for r in rows] == sorted(prompts)
    for line, row in zip(text.decode().splitlines(), rows, strict=True):
        assert set(row) == {"generations", "llm_string", "messages"}
        assert list(row) == sorted(row)
        assert row["generations"]["v"] == 2
        assert line.startswith('{"generations": {"g": [')

    cache = use(tmp_path / "a.jsonl", "auto")
    Echo().invoke("Apple?")  # a hit: nothing to write
    assert cache.save() is False
    assert (tmp_path / "a.jsonl").read_bytes() == text


def test_a_text_prompt_is_stored_as_prompt(tmp_path: Path) -> None:
    path = tmp_path / "llm.jsonl"
    cache = use(path, "record")
    FakeListLLM(responses=["Paris."]).invoke(QUESTION)
    cache.save()
    (row,) = lines(path)
    assert row["prompt"] == QUESTION
    assert "messages" not in row
    use(path, "replay")
    llm = FakeListLLM(responses=["Paris."])
    assert llm.invoke(QUESTION) == "Paris."
    assert llm.i == 0  # its next response was not used


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        '{"llm_string": "x", "prompt": "p"}',
        '{"generations": {"g": [], "v": 2}, "llm_string": "x", "prompt": "p"}',
        '{"generations": {"g": [{"t": "gen", "text": "a"}], "v": 2}, "llm_string": 1, '
        '"prompt": "p"}',
        '{"generations": {"g": [{"t": "gen", "text": "a"}], "v": 2}, "llm_string": "x", '
        '"messages": "not a list"}',
    ],
)
def test_a_file_that_is_not_a_recording_is_refused_with_its_line(
    tmp_path: Path, content: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(f"\n{content}\n")
    with pytest.raises(ReplayError, match=r"bad\.jsonl:2: not a recorded request"):
        ReplayCache(path, "replay")


def test_a_request_recorded_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    record(path, QUESTION)
    path.write_text(path.read_text() * 2)
    with pytest.raises(ReplayError, match=r"rec\.jsonl:2: the same request as line 1"):
        ReplayCache(path, "auto")


def test_bad_arguments_fail_at_construction(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode must be one of 'replay', 'record', 'auto'"):
        ReplayCache(tmp_path / "x.jsonl", "play")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="check_secrets must be a bool"):
        ReplayCache(tmp_path / "x.jsonl", check_secrets=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="keep_existing must be a bool"):
        ReplayCache(tmp_path / "x.jsonl", keep_existing=None)  # type: ignore[arg-type]


def test_threads_recording_together_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    cache = use(path, "record")
    model = Echo()
    threads = [threading.Thread(target=lambda i=i: model.invoke(f"question {i}")) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.save()
    assert len(lines(path)) == 8
    assert cache.stats().updates == 8


# -- streams -------------------------------------------------------------------------------


async def test_a_recorded_stream_replays_its_chunks(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    cache = use(path, "record")
    recorder = Echo()
    live = [c.content for c in cached(recorder).stream(QUESTION)]
    alive = [c.content async for c in cached(recorder).astream("Async?")]
    assert cache.save()
    assert len(recorder.calls) == 2

    use(path, "replay")
    model = Echo()
    assert [c.content for c in cached(model).stream(QUESTION)] == live
    assert [c.content async for c in cached(model).astream("Async?")] == alive
    assert model.invoke(QUESTION).content == "".join(map(str, live))  # the same entry
    assert model.calls == []
    assert "".join(map(str, live)) == f"echo: {QUESTION}"


def test_a_recorded_openai_stream_replays_its_chunks(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    provider = FakeOpenAI(answer="The capital of France is Paris.")
    cache = use(path, "record")
    live = list(cached(openai_model(provider)).stream(QUESTION))
    cache.save()
    use(path, "replay")
    replayed = list(cached(openai_model(provider)).stream(QUESTION))
    assert len(provider.requests) == 1
    assert [c.content for c in replayed] == [c.content for c in live]
    assert [c.response_metadata for c in replayed] == [c.response_metadata for c in live]


# -- secrets -------------------------------------------------------------------------------


def test_an_api_key_is_never_written(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    record(path, QUESTION, model=openai_model(FakeOpenAI(), api_key=OPENAI_KEY))
    text = path.read_text()
    assert OPENAI_KEY not in text
    assert OPENAI_KEY[8:] not in text
    (row,) = lines(path)
    serialized = json.loads(row["llm_string"].rpartition("---")[0])
    assert serialized["kwargs"]["openai_api_key"] == {
        "id": ["OPENAI_API_KEY"],
        "lc": 1,
        "type": "secret",
    }


def test_a_key_in_a_plain_field_is_refused_and_nothing_written(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    provider = FakeOpenAI()
    cache = use(path, "record")
    model = openai_model(provider, default_headers={"X-Proxy-Auth": f"Bearer {OPENAI_KEY}"})
    with pytest.raises(SecretInRecordingError, match="the llm_string holds an API key") as info:
        model.invoke(QUESTION)
    assert OPENAI_KEY not in str(info.value)
    assert len(provider.requests) == 1  # the call was made; its answer is not recorded
    assert len(cache) == 0
    assert cache.save() is False
    assert not path.exists()


def test_the_value_of_a_secret_environment_variable_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACME_API_TOKEN", "acme-0123456789abcdef")
    use(tmp_path / "rec.jsonl", "record")
    with pytest.raises(SecretInRecordingError, match=r"the prompt holds the value of \$ACME_API"):
        Echo().invoke("My token is acme-0123456789abcdef, keep it safe")
    allowed = use(tmp_path / "rec.jsonl", "record", check_secrets=False)
    Echo().invoke("My token is acme-0123456789abcdef, keep it safe")
    assert allowed.save()


# -- the network: none in replay mode -------------------------------------------------------


@dataclass
class Network:
    """Every attempt to resolve a host or connect a socket, refused and recorded."""

    attempts: list[str] = field(default_factory=list)


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> Network:
    """Patch DNS and ``socket.socket.connect``/``connect_ex``: both httpx transports use them."""
    seen = Network()

    def refuse(what: str) -> Any:
        def attempt(*args: Any, **kwargs: Any) -> Any:
            seen.attempts.append(f"{what}{args[-1] if what == 'connect' else args[:1]!r}")
            raise OSError(f"no network in this test ({what})")

        return attempt

    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    monkeypatch.setattr(socket.socket, "connect", refuse("connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("connect"))
    return seen


async def test_replay_mode_opens_no_socket(tmp_path: Path, network: Network) -> None:
    path = tmp_path / "rec.jsonl"
    record(path, QUESTION, model=openai_model(FakeOpenAI()))

    use(path, "replay")
    model = openai_model()  # the default httpx transports: a miss would reach the network
    assert model.invoke(QUESTION).content == "Paris."
    assert (await model.ainvoke(QUESTION)).content == "Paris."
    with pytest.raises(ReplayMiss):
        model.invoke("Another question")
    with pytest.raises(ReplayMiss):
        await model.ainvoke("Another question")
    with pytest.raises(ReplayMiss):
        list(cached(model).stream("Another question"))
    assert network.attempts == []

    # The check is not vacuous: the same model, allowed to call the provider, tries to.
    use(path, "auto")
    with pytest.raises(openai.APIConnectionError):
        model.invoke("Another question")
    with pytest.raises(openai.APIConnectionError):
        await model.ainvoke("Another question")
    assert len(network.attempts) >= 2
    assert all("api.openai.test" in a for a in network.attempts)


# -- the plugin, as a user meets it (pytester) ---------------------------------------------

# The plugin loads from its entry point once gencache is installed with it; until then, -p.
_INSTALLED = any(
    ep.value == "gencache.testing" for ep in importlib.metadata.entry_points(group="pytest11")
)
PLUGIN = () if _INSTALLED else ("-p", "gencache.testing")

APP = """
import json

import httpx
import openai
import pytest
from langchain_core.globals import get_llm_cache
from langchain_openai import ChatOpenAI

REQUESTS = []


def provider(request):
    REQUESTS.append(json.loads(request.content))
    message = {"role": "assistant", "content": "Paris."}
    return httpx.Response(200, json={
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
    })


def model():
    client = httpx.Client(transport=httpx.MockTransport(provider))
    return ChatOpenAI(model="gpt-4o-mini", api_key="sk-test", http_client=client, max_retries=0)


@pytest.mark.llm_replay("recordings/capital.jsonl")
def test_capital():
    assert model().invoke("PROMPT").content == "Paris."
    stats = get_llm_cache().stats()
    assert stats.hits + stats.misses == 1
    assert len(REQUESTS) == stats.misses  # a hit makes no request
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    if not (pytester.path / "pytest.ini").exists():
        pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    return pytester.runpytest(*PLUGIN, "--strict-markers", *args)


def test_a_suite_records_replays_and_fails_on_a_changed_prompt(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_app=APP.replace("PROMPT", QUESTION))
    recording = pytester.path / "recordings" / "capital.jsonl"

    run(pytester, "--llm-replay=record").assert_outcomes(passed=1)
    assert len(lines(recording)) == 1
    run(pytester, "--llm-replay=replay").assert_outcomes(passed=1)  # a hit: no request

    pytester.makepyfile(test_app=APP.replace("PROMPT", "What is the capital of Spain?"))
    before = recording.read_bytes()
    failed = run(pytester, "--llm-replay=replay")
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines(
        [
            "E * gencache.testing.ReplayMiss: no recorded response for this request in "
            "*capital.jsonl (mode: replay).",
            "E * The nearest differs:",
            "E *   - prompt: message 1 (human) content differs at char 23",
            "E *       request:  ...'t is the capital of Spain?'",
            "E *       recorded: ...'t is the capital of France?'",
        ]
    )
    assert recording.read_bytes() == before

    run(pytester, "--llm-replay=auto").assert_outcomes(passed=1)
    assert len(lines(recording)) == 2  # the new request added, the old one kept
    run(pytester, "--llm-replay=record").assert_outcomes(passed=1)
    (row,) = lines(recording)  # re-recorded: only what the test asks now
    assert row["messages"][0]["kwargs"]["content"] == "What is the capital of Spain?"


def test_the_default_mode_is_replay_on_ci_and_auto_elsewhere(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_app=APP.replace("PROMPT", QUESTION))
    monkeypatch.setenv("CI", "true")
    failed = run(pytester)
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines(["*ReplayMiss: no recorded request in *: the file does not exist."])
    for value in ("", "false", "0"):
        monkeypatch.setenv("CI", value)
        run(pytester).assert_outcomes(passed=1)  # auto: recorded the first time, then replayed
    monkeypatch.delenv("CI")
    run(pytester).assert_outcomes(passed=1)
    assert len(lines(pytester.path / "recordings" / "capital.jsonl")) == 1


def test_the_fixture_without_marker_uses_a_file_named_after_the_test(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_named="""
        import pytest
        from langchain_core.language_models import ParrotFakeChatModel

        class TestCart:
            @pytest.mark.parametrize("n", [1, "a/b c"])
            def test_total(self, llm_replay, n):
                assert ParrotFakeChatModel().invoke(f"total {n}").content == f"total {n}"
                assert llm_replay.mode == "record"

        @pytest.mark.llm_replay(check_secrets=False)
        def test_marker_without_path():
            ParrotFakeChatModel().invoke("hello")
        """
    )
    run(pytester, "--llm-replay=record").assert_outcomes(passed=3)
    folder = pytester.path / "llm_replay" / "test_named"
    names = sorted(p.name for p in folder.iterdir())
    test_file = pytester.path / "test_named.py"
    expected = [
        default_path(test_file, f"test_named.py::{name}").name
        for name in (
            "TestCart::test_total[1]",
            "TestCart::test_total[a/b c]",
            "test_marker_without_path",
        )
    ]
    assert names == sorted(expected)
    assert "TestCart.test_total[1].jsonl" in names
    assert any(re.fullmatch(r"TestCart\.test_total\[a_b_c\]-[0-9a-f]{10}\.jsonl", n) for n in names)


def test_the_global_cache_is_restored_after_each_test_even_a_failing_one(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_restore="""
        import pytest
        from langchain_core.globals import get_llm_cache, set_llm_cache
        from gencache import GenCacheError, InMemoryCache
        from gencache.testing import ReplayCache

        BEFORE = InMemoryCache()
        set_llm_cache(BEFORE)

        def test_fails(llm_replay):
            assert get_llm_cache() is llm_replay
            assert isinstance(llm_replay, ReplayCache)
            assert False, "deliberately"

        @pytest.mark.llm_replay("x.jsonl")
        def test_marker_only():
            assert isinstance(get_llm_cache(), ReplayCache)

        def test_after():
            assert get_llm_cache() is BEFORE

        def test_unused_is_inert():
            assert get_llm_cache() is BEFORE
        """
    )
    result = run(pytester, "-p", "no:randomly", "--llm-replay=auto")
    result.assert_outcomes(passed=3, failed=1)
    assert not (pytester.path / "x.jsonl").exists()  # nothing recorded, nothing written
    assert not (pytester.path / "llm_replay").exists()


def test_tests_sharing_a_file_in_record_mode_all_keep_their_requests(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_shared="""
        import pytest
        from langchain_core.language_models import ParrotFakeChatModel

        pytestmark = pytest.mark.llm_replay("shared.jsonl")

        def test_one():
            ParrotFakeChatModel().invoke("one")

        def test_two():
            ParrotFakeChatModel().invoke("two")
        """
    )
    run(pytester, "--llm-replay=record").assert_outcomes(passed=2)
    run(pytester, "--llm-replay=record").assert_outcomes(passed=2)
    contents = [
        r["messages"][0]["kwargs"]["content"] for r in lines(pytester.path / "shared.jsonl")
    ]
    assert contents == ["one", "two"]
    run(pytester, "--llm-replay=replay").assert_outcomes(passed=2)


def test_a_test_passing_although_its_code_caught_a_replay_miss_fails(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_catching="""
        import pytest
        from langchain_core.language_models import ParrotFakeChatModel

        def answer(question):
            try:
                return ParrotFakeChatModel().invoke(question).content
            except Exception:
                return "Sorry, try again later."

        @pytest.mark.llm_replay("catching.jsonl")
        def test_catches():
            assert answer("hello") in ("hello", "Sorry, try again later.")

        @pytest.mark.llm_replay("failing.jsonl")
        def test_fails_after_recording():
            ParrotFakeChatModel().invoke("recorded anyway")
            assert False, "deliberately"
        """
    )
    recorded = run(pytester, "--llm-replay=auto")
    recorded.assert_outcomes(passed=1, failed=1)
    assert len(lines(pytester.path / "catching.jsonl")) == 1
    assert len(lines(pytester.path / "failing.jsonl")) == 1  # a failed test's answers are real

    (pytester.path / "catching.jsonl").unlink()
    result = run(pytester, "--llm-replay=replay")
    result.assert_outcomes(passed=1, failed=1, errors=1)  # test_catches: passed, then error
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_catches*",
            "*1 LLM call(s) failed the replay, but the test did not see it (the code under "
            "test caught ReplayMiss). The first:",
            "no recorded request in *catching.jsonl (mode: replay): the file does not exist.",
        ]
    )


def test_misuse_is_reported_clearly(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_misuse="""
        import pytest

        @pytest.mark.llm_replay("a.jsonl", "b.jsonl")
        def test_two_paths():
            pass
        """
    )
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*llm_replay takes one optional path and check_secrets*"])
    bad = run(pytester, "--llm-replay=sometimes")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--llm-replay: invalid choice: 'sometimes'*"])


def test_the_plugin_documents_its_option_and_marker(pytester: pytest.Pytester) -> None:
    run(pytester, "--help").stdout.fnmatch_lines(
        ["*gencache: recorded LLM calls*", "*--llm-replay=*"]
    )
    run(pytester, "--markers").stdout.fnmatch_lines(["@pytest.mark.llm_replay(path=None, *"])


def test_a_model_with_its_own_cache_bypasses_the_recording(tmp_path: Path) -> None:
    # A model with its own cache instance bypasses the global recording (documented).
    own = InMemoryCache()
    record(tmp_path / "rec.jsonl", QUESTION)
    use(tmp_path / "rec.jsonl", "replay")
    model = Echo(cache=own)
    model.invoke("Not recorded")  # no ReplayMiss: LangChain never asks the global cache
    assert model.calls == ["Not recorded"]
    assert len(own) == 1
