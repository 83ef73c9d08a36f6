"""Admission: which answers a cache stores (the ``admit=`` hook and ``complete_only``).

LangChain stores every answer, so one empty, truncated or filtered response is replayed
for as long as it stays in the cache. ``admit=`` takes a callable that sees each answer
before it is stored; :func:`complete_only` is the one gencache ships.

The providers' integrations report why an answer stopped in different places and words:
``generation_info`` (OpenAI chat completions and completions, Gemini), the message's
``response_metadata`` (every chat model: LangChain copies ``generation_info`` and the
provider's response fields there), ``additional_kwargs`` and content blocks (OpenAI
refusals). :func:`complete_only` reads all of them; it only reads, never changes, the
generations.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.outputs import Generation

__all__ = ["Admit", "check_admit", "complete_only"]

Admit = Callable[[str, str, Sequence[Generation]], bool]
"""An admission hook: ``(prompt, llm_string, generations) -> bool``; ``True`` stores."""

# Where integrations put the reason a generation stopped: OpenAI, Gemini, Mistral and
# most others ``finish_reason``; Anthropic ``stop_reason``; Bedrock Converse
# ``stopReason``; Ollama ``done_reason``.
_REASON_KEYS = ("finish_reason", "stop_reason", "stopReason", "done_reason")

# Reasons, lower-cased, meaning the output was cut off before its end.
_TRUNCATED = frozenset(
    {
        "length",  # OpenAI, Mistral, Ollama, vLLM
        "max_tokens",  # Anthropic, Bedrock, Gemini (MAX_TOKENS), Cohere
        "max_output_tokens",  # OpenAI Responses API incomplete_details.reason
        "model_length",  # Mistral: the context window ran out
        "model_context_window_exceeded",  # Anthropic
    }
)

# Reasons, lower-cased, meaning a provider's filter blocked or cut the output.
_FILTERED = frozenset(
    {
        "content_filter",  # OpenAI, Azure OpenAI, Mistral
        "refusal",  # Anthropic (streaming classifiers)
        "safety",  # Gemini, and the rest of Gemini's blocking reasons:
        "prohibited_content",
        "blocklist",
        "spii",
        "image_safety",
        "recitation",
        "content_filtered",  # Bedrock
        "guardrail_intervened",  # Bedrock Guardrails
    }
)

_INCOMPLETE = _TRUNCATED | _FILTERED

# Content-block types that carry answer text, and those that carry only the model's
# reasoning (which is not an answer: a reply that is all thinking was cut off).
_TEXT_BLOCKS = frozenset({"text", "output_text"})
_REASONING_BLOCKS = frozenset({"reasoning", "thinking", "redacted_thinking"})


def _reason(value: Any) -> str | None:
    """Return a stop reason as a lower-case name, whatever type the SDK gave it."""
    # Gemini's SDK may hand over its FinishReason enum, or its str() "FinishReason.SAFETY".
    if isinstance(value, enum.Enum):
        value = value.name
    if isinstance(value, str) and value:
        return value.rsplit(".", 1)[-1].lower()
    return None


def _stopped_early(metadata: Mapping[str, Any]) -> bool:
    """Whether ``metadata`` says the output was truncated or filtered."""
    if any(_reason(metadata.get(key)) in _INCOMPLETE for key in _REASON_KEYS):
        return True
    # OpenAI Responses API: status "incomplete", incomplete_details.reason says why.
    if metadata.get("status") == "incomplete":
        return True
    details = metadata.get("incomplete_details")
    if isinstance(details, Mapping) and _reason(details.get("reason")) in _INCOMPLETE:
        return True
    # Gemini blocked the prompt itself: an answer with no candidates' content.
    feedback = metadata.get("prompt_feedback")
    if isinstance(feedback, Mapping):
        block = _reason(feedback.get("block_reason"))
        if block is not None and block != "blocked_reason_unspecified":
            return True
    return False


def _blocks(content: Any) -> Iterable[Any]:
    return (content,) if isinstance(content, str) else content or ()


def _refused(message: BaseMessage) -> bool:
    """Whether ``message`` carries a refusal (OpenAI's field or a refusal block)."""
    if message.additional_kwargs.get("refusal"):
        return True
    for block in _blocks(message.content):
        if isinstance(block, Mapping):
            kind = block.get("type")
            inner = block.get("value") if kind == "non_standard" else None
            if kind == "refusal" or (isinstance(inner, Mapping) and inner.get("type") == "refusal"):
                return True
    return False


def _has_answer(message: BaseMessage) -> bool:
    """Whether ``message`` holds any text, tool call or non-text output."""
    kwargs = message.additional_kwargs
    if (
        getattr(message, "tool_calls", None)
        or getattr(message, "tool_call_chunks", None)
        or kwargs.get("tool_calls")
        or kwargs.get("function_call")
        or kwargs.get("audio")
    ):
        return True
    for block in _blocks(message.content):
        if isinstance(block, str):
            if block.strip():
                return True
        elif isinstance(block, Mapping):
            kind = block.get("type")
            if kind in _TEXT_BLOCKS or (kind is None and "text" in block):
                text = block.get("text")
                if isinstance(text, str) and text.strip():
                    return True
            elif kind not in _REASONING_BLOCKS:
                return True  # tool use, image, audio, file, ...: output that is not text
    return False


def _complete(generation: Generation) -> bool:
    message = getattr(generation, "message", None)
    if generation.generation_info and _stopped_early(generation.generation_info):
        return False
    if not isinstance(message, BaseMessage):
        return bool(generation.text.strip())
    return (
        not _stopped_early(message.response_metadata)
        and not _refused(message)
        and _has_answer(message)
    )


def complete_only(prompt: str, llm_string: str, generations: Sequence[Generation]) -> bool:
    """Admit an answer only if every generation in it is complete.

    Refuses (returns ``False``) an answer with no generations, or with a generation
    that is

    * empty: no text (whitespace only counts as none; reasoning or thinking blocks are
      not an answer), no tool call, and no other output such as an image or audio;
    * truncated: a stop reason of ``length``, ``max_tokens`` (Anthropic ``stop_reason``,
      Gemini ``MAX_TOKENS``, Bedrock ``stopReason``), ``max_output_tokens``,
      ``model_length`` or ``model_context_window_exceeded``, or an OpenAI Responses
      API ``status`` of ``incomplete``;
    * filtered: a stop reason of ``content_filter``, ``refusal``, Gemini's ``SAFETY``,
      ``PROHIBITED_CONTENT``, ``BLOCKLIST``, ``SPII``, ``IMAGE_SAFETY`` or
      ``RECITATION``, Bedrock's ``content_filtered`` or ``guardrail_intervened``, a
      Gemini ``prompt_feedback.block_reason``, or an OpenAI refusal
      (``additional_kwargs["refusal"]`` or a ``refusal`` content block).

    Stop reasons are read from ``generation_info`` and from the message's
    ``response_metadata``, compared case-insensitively. Everything else is admitted.
    Cost: O(size of the generations' content lists and metadata keys read); it runs
    only when an answer is about to be stored, after a provider call.

    Args:
        prompt: The prompt of the call (unused: the decision depends on the answer).
        llm_string: The model configuration of the call (unused).
        generations: The answer LangChain is about to store.

    Returns:
        ``True`` to store the answer, ``False`` to refuse it.
    """
    return bool(generations) and all(_complete(g) for g in generations)


def check_admit(admit: Any) -> Admit | None:
    """Return ``admit`` if it is ``None`` (store everything) or callable.

    Raises:
        TypeError: If ``admit`` is neither ``None`` nor callable.
    """
    if admit is not None and not callable(admit):
        msg = (
            "admit must be None or a callable (prompt, llm_string, generations) -> bool, "
            f"not {type(admit).__name__}"
        )
        raise TypeError(msg)
    return admit  # type: ignore[no-any-return]
