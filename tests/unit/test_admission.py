"""``complete_only`` and ``check_admit``: which answers a cache may store.

The messages are written out as the provider integrations produce them (OpenAI's were
checked against langchain-openai 1.7 parsing recorded API responses; Anthropic's and
Gemini's follow langchain-anthropic's and langchain-google-genai's output code). In a
chat model's answer LangChain copies ``generation_info`` and the provider's response
fields into ``response_metadata`` before the cache sees it, so both places are filled.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

import pytest
from langchain_core.caches import BaseCache
from langchain_core.language_models import FakeListChatModel, FakeListLLM
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, Generation

from gencache._admission import Admit, check_admit, complete_only

_OPENAI_USAGE = {"completion_tokens": 3, "prompt_tokens": 5, "total_tokens": 8}


def openai_chat(
    content: str = "Paris.",
    finish_reason: str = "stop",
    *,
    refusal: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    **additional_kwargs: Any,
) -> ChatGeneration:
    """A chat-completions answer as ``ChatOpenAI`` hands it to the cache."""
    info = {"finish_reason": finish_reason, "logprobs": None}
    message = AIMessage(
        content=content,
        additional_kwargs={"refusal": refusal, **additional_kwargs},
        tool_calls=tool_calls or [],
        id="chatcmpl-1",
        usage_metadata={"input_tokens": 5, "output_tokens": 3, "total_tokens": 8},
        response_metadata={
            "token_usage": _OPENAI_USAGE,
            "model_provider": "openai",
            "model_name": "gpt-4o-mini-2024-07-18",
            "system_fingerprint": "fp_1",
            "id": "chatcmpl-1",
            "service_tier": "default",
            **info,
        },
    )
    return ChatGeneration(message=message, generation_info=info)


def openai_responses(
    content: list[str | dict[Any, Any]], status: str = "completed", reason: str | None = None
) -> ChatGeneration:
    """A Responses-API answer (``ChatOpenAI(use_responses_api=True)``)."""
    metadata: dict[str, Any] = {
        "id": "resp_1",
        "created_at": 1.0,
        "model": "gpt-4o-mini",
        "object": "response",
        "status": status,
        "model_provider": "openai",
        "model_name": "gpt-4o-mini",
    }
    if reason is not None:
        metadata["incomplete_details"] = {"reason": reason}
    return ChatGeneration(message=AIMessage(content=content, response_metadata=metadata))


def anthropic(
    content: str | list[str | dict[Any, Any]],
    stop_reason: str = "end_turn",
    tool_calls: list[dict[str, Any]] | None = None,
) -> ChatGeneration:
    """A ``ChatAnthropic`` answer: a lone text block becomes a ``str`` content."""
    message = AIMessage(
        content=content,
        tool_calls=tool_calls or [],
        id="msg_01",
        response_metadata={
            "id": "msg_01",
            "model": "claude-sonnet-4-5-20250929",
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 40},
            "model_name": "claude-sonnet-4-5-20250929",
            "model_provider": "anthropic",
        },
    )
    return ChatGeneration(message=message)


def gemini(content: str, finish_reason: Any = "STOP", block_reason: Any = 0) -> ChatGeneration:
    """A ``ChatGoogleGenerativeAI`` answer."""
    info = {
        "finish_reason": finish_reason,
        "model_name": "gemini-2.5-flash",
        "safety_ratings": [],
        "prompt_feedback": {"block_reason": block_reason, "safety_ratings": []},
    }
    message = AIMessage(
        content=content, response_metadata={**info, "model_provider": "google_genai"}
    )
    return ChatGeneration(message=message, generation_info=info)


def other_provider(**metadata: Any) -> ChatGeneration:
    return ChatGeneration(message=AIMessage(content="An answer.", response_metadata=metadata))


WEATHER_CALL = {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1"}
THINKING = {"type": "thinking", "thinking": "The user asks for...", "signature": "EqQB"}


class FinishReason(enum.Enum):
    """Stands in for google-genai's enum, which some versions hand over unconverted."""

    STOP = 1
    MAX_TOKENS = 2
    SAFETY = 3


ADMITTED = {
    "openai text": openai_chat(),
    "openai tool call, no text": openai_chat("", "tool_calls", tool_calls=[WEATHER_CALL]),
    "openai legacy function call": openai_chat(
        "", "function_call", function_call={"name": "f", "arguments": "{}"}
    ),
    "openai audio": openai_chat("", audio={"id": "audio_1", "data": "UklGR", "transcript": "Hi"}),
    "openai responses text": openai_responses(
        [{"type": "text", "text": "Paris.", "annotations": [], "id": "msg_1"}]
    ),
    "anthropic text": anthropic("Paris."),
    "anthropic stop sequence": anthropic("Paris.", "stop_sequence"),
    "anthropic thinking then text": anthropic([THINKING, {"type": "text", "text": "Paris."}]),
    "anthropic tool use": anthropic(
        [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"c": 1}},
        ],
        "tool_use",
        [{"name": "get_weather", "args": {"c": 1}, "id": "toolu_01"}],
    ),
    "anthropic paused turn": anthropic("Searching.", "pause_turn"),
    "gemini stop": gemini("Paris."),
    "gemini enum stop": gemini("Paris.", FinishReason.STOP),
    "gemini unspecified block reason": gemini("Paris.", block_reason="BLOCKED_REASON_UNSPECIFIED"),
    "image output": ChatGeneration(
        message=AIMessage(content=[{"type": "image", "base64": "iVBOR", "mime_type": "image/png"}])
    ),
    "legacy text block without a type": ChatGeneration(message=AIMessage(content=[{"text": "x"}])),
    "no metadata at all": ChatGeneration(message=AIMessage(content="Paris.")),
    "bedrock end turn": other_provider(stopReason="end_turn"),
    "llm text": Generation(text="Paris.", generation_info={"finish_reason": "stop"}),
    "llm without generation_info": Generation(text="Paris."),
}

REFUSED = {
    # empty
    "openai empty": openai_chat(""),
    "openai whitespace": openai_chat(" \n"),
    "openai responses no output": openai_responses([]),
    "anthropic thinking only": anthropic([THINKING]),
    "anthropic empty text block": anthropic([{"type": "text", "text": ""}]),
    "llm empty": Generation(text="", generation_info={"finish_reason": "stop"}),
    "only an invalid tool call": ChatGeneration(
        message=AIMessage(
            content="", invalid_tool_calls=[{"name": "f", "args": "{oops", "id": "1", "error": "x"}]
        )
    ),
    # truncated
    "openai length": openai_chat("Paris is the cap", "length"),
    "openai LENGTH upper case": openai_chat("Paris is the cap", "LENGTH"),
    "openai max_tokens": openai_chat("Paris is the cap", "max_tokens"),
    "openai responses incomplete": openai_responses(
        [{"type": "text", "text": "Paris is", "annotations": [], "id": "msg_1"}],
        "incomplete",
        "max_output_tokens",
    ),
    "openai responses incomplete, no details": openai_responses(
        [{"type": "text", "text": "Paris is", "annotations": [], "id": "msg_1"}], "incomplete"
    ),
    "anthropic max_tokens": anthropic("Paris is the cap", "max_tokens"),
    "anthropic max_tokens while thinking": anthropic([THINKING], "max_tokens"),
    "anthropic context window": anthropic("Paris is", "model_context_window_exceeded"),
    "gemini MAX_TOKENS": gemini("Paris is the cap", "MAX_TOKENS"),
    "gemini enum MAX_TOKENS": gemini("Paris is the cap", FinishReason.MAX_TOKENS),
    "mistral model_length": other_provider(finish_reason="model_length"),
    "bedrock max_tokens": other_provider(stopReason="max_tokens"),
    "ollama length": other_provider(done_reason="length"),
    "llm length": Generation(text="Paris is the", generation_info={"finish_reason": "length"}),
    # filtered
    "openai content_filter": openai_chat("", "content_filter"),
    "openai content_filter with partial text": openai_chat("Here is how", "content_filter"),
    "openai refusal": openai_chat("", refusal="I can't help with that."),
    "openai responses refusal block": openai_responses(
        [{"type": "refusal", "refusal": "I can't help.", "id": "msg_1"}]
    ),
    "standard refusal block": ChatGeneration(
        message=AIMessage(content=[{"type": "text", "text": "No."}, {"type": "refusal"}])
    ),
    "non-standard refusal block": ChatGeneration(
        message=AIMessage(
            content=[{"type": "non_standard", "value": {"type": "refusal", "refusal": "No"}}]
        )
    ),
    "anthropic refusal": anthropic("I can't", "refusal"),
    "gemini SAFETY": gemini("", "SAFETY"),
    "gemini enum SAFETY": gemini("", FinishReason.SAFETY),
    "gemini str(enum) SAFETY": gemini("", "FinishReason.SAFETY"),
    "gemini RECITATION": gemini("It was the best", "RECITATION"),
    "gemini PROHIBITED_CONTENT": gemini("", "PROHIBITED_CONTENT"),
    "gemini blocked prompt": gemini("", "", block_reason="PROHIBITED_CONTENT"),
    "bedrock guardrail": other_provider(stopReason="guardrail_intervened"),
    "llm content_filter": Generation(text="x", generation_info={"finish_reason": "content_filter"}),
}


@pytest.mark.parametrize("generation", ADMITTED.values(), ids=ADMITTED.keys())
def test_complete_answers_are_admitted(generation: Generation) -> None:
    assert complete_only("prompt", "llm", [generation]) is True


@pytest.mark.parametrize("generation", REFUSED.values(), ids=REFUSED.keys())
def test_empty_truncated_and_filtered_answers_are_refused(generation: Generation) -> None:
    assert complete_only("prompt", "llm", [generation]) is False


def test_an_answer_is_admitted_only_if_every_generation_is_complete() -> None:
    good, cut = ADMITTED["openai text"], REFUSED["openai length"]
    assert complete_only("p", "l", [good, ADMITTED["anthropic text"]]) is True
    assert complete_only("p", "l", [good, cut]) is False
    assert complete_only("p", "l", (cut, good)) is False
    assert complete_only("p", "l", []) is False


def test_the_generations_are_not_changed() -> None:
    generations = [*ADMITTED.values(), *REFUSED.values()]
    before = [g.model_dump() for g in generations]
    for g in generations:
        complete_only("p", "l", [g])
    assert [g.model_dump() for g in generations] == before


class _AdmissionLog(BaseCache):
    """Records what LangChain hands to ``update`` and what ``complete_only`` says of it."""

    def __init__(self) -> None:
        self.verdicts: list[bool] = []

    def lookup(self, prompt: str, llm_string: str) -> None:
        return None

    def update(self, prompt: str, llm_string: str, return_val: Sequence[Generation]) -> None:
        self.verdicts.append(complete_only(prompt, llm_string, return_val))

    def clear(self, **kwargs: Any) -> None:
        self.verdicts.clear()


async def test_on_what_langchain_models_hand_to_the_cache() -> None:
    log = _AdmissionLog()
    chat = FakeListChatModel(responses=["Paris.", "", "  "], cache=log)
    llm = FakeListLLM(responses=["Paris.", ""], cache=log)
    chat.invoke("a")
    await chat.ainvoke("b")
    chat.batch(["c"])
    llm.invoke("d")
    await llm.ainvoke("e")
    assert log.verdicts == [True, False, False, True, False]


def test_complete_only_is_an_admit_hook() -> None:
    hook: Admit = complete_only  # checked by mypy
    assert check_admit(hook) is complete_only


def test_check_admit_accepts_none_and_callables() -> None:
    def admit_all(prompt: str, llm_string: str, generations: Sequence[Generation]) -> bool:
        return True

    class Policy:
        def __call__(self, prompt: str, llm_string: str, gens: Sequence[Generation]) -> bool:
            return False

    policy = Policy()
    assert check_admit(None) is None
    assert check_admit(admit_all) is admit_all
    assert check_admit(policy) is policy


@pytest.mark.parametrize("bad", [True, "complete_only", 1, [complete_only]])
def test_check_admit_refuses_what_cannot_be_called(bad: Any) -> None:
    with pytest.raises(
        TypeError, match=f"admit must be None or a callable.*not {type(bad).__name__}"
    ):
        check_admit(bad)
