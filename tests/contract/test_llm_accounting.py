"""Accounting for plain (completion) LLMs, on every backend.

A ``BaseLLM`` has no ``usage_metadata``: its tokens come in each generation's
``generation_info`` (``token_usage`` with OpenAI's names, or ``usage`` with Anthropic's),
and its model name from the ``llm_string`` LangChain builds from the model's parameters.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseLLM
from langchain_core.outputs import Generation, LLMResult

from tests.conftest import Factory

OPENAI_STYLE = {"token_usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}
ANTHROPIC_STYLE = {"usage": {"input_tokens": 11, "output_tokens": 5}}


class CountingLLM(BaseLLM):
    """A completion model that reports its usage in ``generation_info``; counts its calls."""

    model_name: str = "counting-llm"
    info: dict[str, Any] = OPENAI_STYLE
    calls: int = 0

    def model_post_init(self, context: Any) -> None:
        object.__setattr__(self, "_lock", threading.Lock())

    @property
    def _llm_type(self) -> str:
        return "counting-llm-type"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def _generate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        with self._lock:  # type: ignore[attr-defined]
            self.calls += len(prompts)
        return self._answer(prompts)

    def _answer(self, prompts: list[str]) -> LLMResult:
        generations = [
            [Generation(text=f"completed {p}", generation_info=self.info)] for p in prompts
        ]
        return LLMResult(generations=generations, llm_output={"token_usage": {"total_tokens": 10}})


@pytest.mark.parametrize(
    ("info", "tokens"),
    [(OPENAI_STYLE, (7, 3)), (ANTHROPIC_STYLE, (11, 5))],
    ids=["openai", "anthropic"],
)
def test_llm_hits_save_the_tokens_of_generation_info(
    make_cache: Factory, info: dict[str, Any], tokens: tuple[int, int]
) -> None:
    cache = make_cache(prices={"counting-llm": (1.0, 4.0)})
    llm = CountingLLM(cache=cache, info=info)
    assert llm.invoke("q") == "completed q"
    for _ in range(3):
        assert llm.invoke("q") == "completed q"
    assert llm.calls == 1
    saved = cache.stats().saved
    assert (saved.calls, saved.input_tokens, saved.output_tokens) == (
        3,
        3 * tokens[0],
        3 * tokens[1],
    )
    # The model name comes from the llm_string (no message to read it from).
    by_model = cache.stats().by_model
    assert set(by_model) == {"counting-llm"}
    assert by_model["counting-llm"].money == pytest.approx(3 * (tokens[0] + 4 * tokens[1]) / 1e6)


async def test_async_llm_hits_are_accounted(make_cache: Factory) -> None:
    cache = make_cache()
    llm = CountingLLM(cache=cache)
    await llm.ainvoke("q")
    await asyncio.gather(*(llm.ainvoke("q") for _ in range(4)))
    assert llm.calls == 1
    saved = cache.stats().saved
    assert (saved.calls, saved.input_tokens, saved.output_tokens) == (4, 28, 12)


def test_llm_without_usage_saves_calls_but_no_tokens(make_cache: Factory) -> None:
    cache = make_cache()
    llm = CountingLLM(cache=cache, info={})
    llm.invoke("q")
    llm.invoke("q")
    saved = cache.stats().saved
    assert (saved.calls, saved.input_tokens, saved.output_tokens) == (1, 0, 0)
    assert saved.money is None


class LlmOutputLLM(CountingLLM):
    """Reports usage as OpenAI's completion models do: in ``llm_output``, for the whole call.

    Each prompt costs 7 input tokens per word and 3 output tokens.
    """

    def _answer(self, prompts: list[str]) -> LLMResult:
        tin = sum(7 * len(p.split()) for p in prompts)
        usage = {"prompt_tokens": tin, "completion_tokens": 3 * len(prompts)}
        return LLMResult(
            generations=[[Generation(text=f"completed {p}")] for p in prompts],
            llm_output={"token_usage": usage, "model_name": self.model_name},
        )


def saved_tokens(cache: Any) -> tuple[int, int, int]:
    saved = cache.stats().saved
    return saved.calls, saved.input_tokens, saved.output_tokens


def test_usage_reported_in_llm_output_only_is_saved(make_cache: Factory) -> None:
    cache = make_cache()
    llm = LlmOutputLLM(cache=cache)
    llm.invoke("one two")
    for _ in range(3):
        assert llm.invoke("one two") == "completed one two"
    assert llm.calls == 1
    assert saved_tokens(cache) == (3, 3 * 14, 3 * 3)


def test_a_batch_call_s_usage_is_divided_over_its_prompts(make_cache: Factory) -> None:
    # One call for three prompts reports 42 input tokens in all (7 + 14 + 21): LangChain
    # keeps them on the first prompt's run only; each entry records an even third.
    cache = make_cache()
    llm = LlmOutputLLM(cache=cache)
    prompts = ["a", "b c", "d e f"]
    llm.generate(prompts)
    assert llm.calls == 3
    llm.generate(prompts)  # the whole batch again: exactly what the call cost is saved
    assert llm.calls == 3
    assert saved_tokens(cache) == (3, 42, 9)
    assert llm.invoke("b c") == "completed b c"  # one prompt: its share, 14 and 3
    assert saved_tokens(cache) == (4, 56, 12)


async def test_async_llm_output_usage_is_saved(make_cache: Factory) -> None:
    cache = make_cache()
    llm = LlmOutputLLM(cache=cache)
    await llm.agenerate(["a", "b c"])  # 7 + 14 input tokens: 10 and 11 on the entries
    await asyncio.gather(llm.ainvoke("a"), llm.ainvoke("b c"))
    assert llm.calls == 2
    assert saved_tokens(cache) == (2, 21, 6)
    await llm.ainvoke("one two")
    await llm.ainvoke("one two")
    assert saved_tokens(cache) == (3, 35, 9)
