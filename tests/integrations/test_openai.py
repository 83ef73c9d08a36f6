"""The real ``langchain-openai`` ``ChatOpenAI``, over a mocked HTTP transport, on every backend.

No network and no key: ``httpx.MockTransport`` answers ``POST /chat/completions`` with
canned JSON shaped as OpenAI's, and counts the requests. Each case calls the model twice
with the same input: the second call must be a hit (no second request) with a result equal
to the first. Structured output is the case that broke the persistent backends in 0.1:
with ``method="json_schema"`` LangChain keeps the pydantic object in
``additional_kwargs["parsed"]``; SQLite and Redis store it as its JSON dict, and
langchain-openai's parser builds the model again from that dict on a hit.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessage
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, ConfigDict

from gencache import InMemoryCache
from tests.conftest import Factory
from tests.integrations.conftest import OPENAI_TEST_ARGS


class Forecast(BaseModel):
    """The structured answer: a date, a list and a float, to exercise the JSON forms."""

    city: str
    day: datetime.date
    highs: list[float]
    summary: str


class StrictForecast(Forecast):
    """In strict mode, which refuses the JSON form of a date (a str) from Python data."""

    model_config = ConfigDict(strict=True)


FORECAST = Forecast(city="Paris", day=datetime.date(2024, 5, 1), highs=[18.5, 21.0], summary="Sun")
PLAIN_ANSWER = "Paris is the capital of France."


@dataclass
class FakeOpenAI:
    """A ``chat.completions`` endpoint: canned answers chosen by the request, counted."""

    requests: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path.endswith("/chat/completions"), request.url
        body = json.loads(request.content)
        self.requests.append(body)
        message: dict[str, Any] = {"role": "assistant", "content": PLAIN_ANSWER, "refusal": None}
        finish_reason = "stop"
        if body.get("tools"):  # method="function_calling": call the schema's tool
            name = body["tools"][0]["function"]["name"]
            message["content"] = None
            message["tool_calls"] = [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": name, "arguments": FORECAST.model_dump_json()},
                }
            ]
            finish_reason = "tool_calls"
        elif body.get("response_format"):  # json_schema or json_object: JSON content
            message["content"] = FORECAST.model_dump_json()
        return httpx.Response(
            200,
            json={
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "created": 1_714_564_800,
                "model": "gpt-4o-mini-2024-07-18",
                "system_fingerprint": "fp_test",
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": finish_reason,
                    }
                ],
                "usage": {
                    "prompt_tokens": 12,
                    "completion_tokens": 9,
                    "total_tokens": 21,
                    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
                },
            },
        )


@pytest.fixture
def openai() -> FakeOpenAI:
    return FakeOpenAI()


@pytest.fixture
def model_for(openai: FakeOpenAI, mock_http: Any) -> Callable[[Any], ChatOpenAI]:
    """Build a ``ChatOpenAI`` on a cache, whose sync and async clients hit ``openai``."""

    def make(cache: Any) -> ChatOpenAI:
        return ChatOpenAI(model="gpt-4o-mini", cache=cache, **OPENAI_TEST_ARGS, **mock_http(openai))

    return make


def _cache(make_cache: Factory) -> Any:
    """An empty cache of the backend under test.

    RedisCache gets a generous ``socket_timeout``: on a loaded machine its default (0.5 s)
    can turn a hit into a miss, and these tests count HTTP requests.
    """
    cache = make_cache()
    if type(cache).__name__ == "RedisCache":
        return make_cache(socket_timeout=10)
    return cache


def _same_answer(first: AIMessage, second: AIMessage) -> None:
    assert second.content == first.content
    assert second.additional_kwargs == first.additional_kwargs
    assert second.tool_calls == first.tool_calls
    assert second.response_metadata == first.response_metadata
    assert first.usage_metadata is not None
    assert second.usage_metadata is not None
    assert second.usage_metadata["input_tokens"] == first.usage_metadata["input_tokens"]
    assert second.usage_metadata["output_tokens"] == first.usage_metadata["output_tokens"]
    assert second.usage_metadata["total_tokens"] == first.usage_metadata["total_tokens"]


def test_plain_invoke_is_answered_from_the_cache(
    make_cache: Factory, openai: FakeOpenAI, model_for: Any
) -> None:
    cache = _cache(make_cache)
    model = model_for(cache)
    first = model.invoke("What is the capital of France?")
    second = model.invoke("What is the capital of France?")
    assert len(openai.requests) == 1
    assert isinstance(first, AIMessage)
    assert isinstance(second, AIMessage)
    assert first.content == PLAIN_ANSWER
    _same_answer(first, second)
    assert cache.stats().hits == 1


async def test_ainvoke_is_answered_from_the_cache(
    make_cache: Factory, openai: FakeOpenAI, model_for: Any
) -> None:
    cache = _cache(make_cache)
    model = model_for(cache)
    first = await model.ainvoke("What is the capital of France?")
    second = await model.ainvoke("What is the capital of France?")
    assert len(openai.requests) == 1
    assert isinstance(first, AIMessage)
    assert isinstance(second, AIMessage)
    assert first.content == PLAIN_ANSWER
    _same_answer(first, second)
    assert cache.stats().hits == 1


@pytest.mark.parametrize("method", ["json_schema", "function_calling", "json_mode"])
def test_structured_output_is_answered_from_the_cache(
    make_cache: Factory, openai: FakeOpenAI, model_for: Any, method: str
) -> None:
    cache = _cache(make_cache)
    structured = model_for(cache).with_structured_output(Forecast, method=method)
    prompt = "Forecast for Paris on 2024-05-01, as JSON."
    first = structured.invoke(prompt)
    second = structured.invoke(prompt)
    assert len(openai.requests) == 1
    assert cache.stats().hits == 1
    assert isinstance(first, Forecast)
    assert isinstance(second, Forecast)  # built again from the stored dict where needed
    assert first == second == FORECAST
    request = openai.requests[0]
    if method == "json_schema":
        assert request["response_format"]["type"] == "json_schema"
    elif method == "json_mode":
        assert request["response_format"] == {"type": "json_object"}
    else:
        assert request["tools"][0]["function"]["name"] == "Forecast"


async def test_structured_output_ainvoke_is_answered_from_the_cache(
    make_cache: Factory, openai: FakeOpenAI, model_for: Any
) -> None:
    cache = _cache(make_cache)
    structured = model_for(cache).with_structured_output(Forecast)  # json_schema
    first = await structured.ainvoke("Forecast for Paris")
    second = await structured.ainvoke("Forecast for Paris")
    assert len(openai.requests) == 1
    assert first == second == FORECAST
    assert isinstance(second, Forecast)


def test_structured_output_raw_message_on_a_hit(
    make_cache: Factory, openai: FakeOpenAI, model_for: Any
) -> None:
    # What a hit holds in "parsed": the model itself in memory, its JSON dict from SQLite
    # and Redis; langchain-openai's parser turns either into the model.
    cache = _cache(make_cache)
    structured = model_for(cache).with_structured_output(Forecast, include_raw=True)
    first = structured.invoke("Forecast for Paris")
    second = structured.invoke("Forecast for Paris")
    assert len(openai.requests) == 1
    assert first["parsed"] == second["parsed"] == FORECAST
    assert first["parsing_error"] is None
    assert second["parsing_error"] is None
    stored = second["raw"].additional_kwargs["parsed"]
    if isinstance(cache, InMemoryCache):
        assert stored is first["raw"].additional_kwargs["parsed"]
    else:
        assert stored == FORECAST.model_dump(mode="json")
        assert type(stored) is dict
        assert stored["day"] == "2024-05-01"


def test_structured_output_its_json_form_cannot_rebuild_is_not_stored(
    make_cache: Factory, openai: FakeOpenAI, model_for: Any
) -> None:
    # Stored as a dict, StrictForecast(**d) would raise on every hit (strict mode refuses
    # "2024-05-01" for a date): the persistent backends skip the write (with a warning)
    # and the next call is a miss; the in-memory cache keeps the object itself.
    cache = _cache(make_cache)
    structured = model_for(cache).with_structured_output(StrictForecast)
    first = structured.invoke("Forecast for Paris")
    second = structured.invoke("Forecast for Paris")
    assert isinstance(first, StrictForecast)
    assert isinstance(second, StrictForecast)
    assert first == second
    assert first.model_dump() == FORECAST.model_dump()
    assert len(openai.requests) == (1 if isinstance(cache, InMemoryCache) else 2)
