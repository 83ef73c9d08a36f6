"""The real ``langchain-openai`` completion model (``OpenAI``), over a mocked HTTP transport.

OpenAI's completion models report token usage for the whole request in ``llm_output``
only; LangChain never passes it to the cache. gencache notes it when the run ends (before
LangChain writes the cache), so what a hit saved counts those tokens, on every backend.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from langchain_openai import OpenAI

from tests.conftest import Factory
from tests.integrations.conftest import OPENAI_TEST_ARGS


@dataclass
class FakeCompletions:
    """A ``/completions`` endpoint: one choice per prompt, 5 input and 2 output tokens each."""

    requests: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path.endswith("/completions"), request.url
        body = json.loads(request.content)
        self.requests.append(body)
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        choices = [
            {"index": i, "text": f" answer to {p}", "logprobs": None, "finish_reason": "stop"}
            for i, p in enumerate(prompts)
        ]
        usage = {
            "prompt_tokens": 5 * len(prompts),
            "completion_tokens": 2 * len(prompts),
            "total_tokens": 7 * len(prompts),
        }
        return httpx.Response(
            200,
            json={
                "id": f"cmpl-{len(self.requests)}",
                "object": "text_completion",
                "created": 1_714_564_800,
                "model": "gpt-3.5-turbo-instruct",
                "choices": choices,
                "usage": usage,
            },
        )


@pytest.fixture
def endpoint() -> FakeCompletions:
    return FakeCompletions()


@pytest.fixture
def llm_for(endpoint: FakeCompletions, mock_http: Any) -> Callable[[Any], OpenAI]:
    def make(cache: Any) -> OpenAI:
        return OpenAI(
            model="gpt-3.5-turbo-instruct", cache=cache, **OPENAI_TEST_ARGS, **mock_http(endpoint)
        )

    return make


def test_completion_model_hits_save_its_llm_output_tokens(
    make_cache: Factory, llm_for: Any, endpoint: FakeCompletions
) -> None:
    cache = make_cache(prices={"gpt-3.5-turbo-instruct": (1.5, 2.0)})
    llm = llm_for(cache)
    first = llm.invoke("capital of France?")
    assert llm.invoke("capital of France?") == first
    assert len(endpoint.requests) == 1
    # One request for three prompts: 15 / 6 tokens in all, 5 / 2 on each entry.
    llm.batch(["a", "b", "c"])
    assert len(endpoint.requests) == 2
    assert llm.batch(["a", "b", "c"]) == [" answer to a", " answer to b", " answer to c"]
    assert len(endpoint.requests) == 2
    stats = cache.stats()
    assert (stats.saved.calls, stats.saved.input_tokens, stats.saved.output_tokens) == (4, 20, 8)
    assert set(stats.by_model) == {"gpt-3.5-turbo-instruct"}
    assert stats.by_model["gpt-3.5-turbo-instruct"].money == pytest.approx((20 * 1.5 + 8 * 2) / 1e6)


async def test_async_completion_model_hits_save_its_tokens(
    make_cache: Factory, llm_for: Any, endpoint: FakeCompletions
) -> None:
    cache = make_cache()
    llm = llm_for(cache)
    await llm.abatch(["a", "b"])
    assert await llm.abatch(["a", "b"]) == [" answer to a", " answer to b"]
    assert len(endpoint.requests) == 1
    saved = cache.stats().saved
    assert (saved.calls, saved.input_tokens, saved.output_tokens) == (2, 10, 4)
