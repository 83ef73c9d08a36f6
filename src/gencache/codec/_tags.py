"""The allow-list: each tag's class and declared fields, and the tags of each version.

Decoding builds only the classes named here, with only the fields named here: this table
is the codec's whole attack surface on the LangChain side, kept apart so that a review of
what a payload can build reads one screen.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    ChatMessageChunk,
    FunctionMessage,
    FunctionMessageChunk,
    HumanMessage,
    HumanMessageChunk,
    SystemMessage,
    SystemMessageChunk,
    ToolMessage,
    ToolMessageChunk,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, Generation, GenerationChunk

__all__ = [
    "ENCODE_FIELDS",
    "ENVELOPE_KEYS",
    "ENVELOPE_META_KEYS",
    "FORMAT_VERSION",
    "GENERATION_TAGS",
    "LEGACY_EXTRA",
    "MESSAGE_TAGS",
    "VERSIONS",
    "GenerationSpec",
    "MessageSpec",
]

FORMAT_VERSION: int = 2
"""Version written in the envelope's ``"v"``; versions 1 and 2 are read."""

_REQUIRED = object()
_BASE_FIELDS = ("content", "additional_kwargs", "response_metadata", "name", "id")
_AI_FIELDS = (*_BASE_FIELDS, "tool_calls", "invalid_tool_calls", "usage_metadata")
_TOOL_FIELDS = (*_BASE_FIELDS, "tool_call_id", "artifact", "status")
_CHAT_FIELDS = (*_BASE_FIELDS, "role")
# tag -> (class, declared fields); the v1 tags are the first six.
_MESSAGES: dict[str, tuple[type[BaseMessage], tuple[str, ...]]] = {
    "ai": (AIMessage, _AI_FIELDS),
    "human": (HumanMessage, _BASE_FIELDS),
    "system": (SystemMessage, _BASE_FIELDS),
    "tool": (ToolMessage, _TOOL_FIELDS),
    "chat": (ChatMessage, _CHAT_FIELDS),
    "function": (FunctionMessage, _BASE_FIELDS),
    "ai_chunk": (AIMessageChunk, (*_AI_FIELDS, "tool_call_chunks", "chunk_position")),
    "human_chunk": (HumanMessageChunk, _BASE_FIELDS),
    "system_chunk": (SystemMessageChunk, _BASE_FIELDS),
    "tool_chunk": (ToolMessageChunk, _TOOL_FIELDS),
    "chat_chunk": (ChatMessageChunk, _CHAT_FIELDS),
    "function_chunk": (FunctionMessageChunk, _BASE_FIELDS),
}
MESSAGE_TAGS: dict[type[BaseMessage], str] = {cls: tag for tag, (cls, _) in _MESSAGES.items()}
_GENERATIONS: dict[str, type[Generation]] = {
    "gen": Generation,
    "chat_gen": ChatGeneration,
    "gen_chunk": GenerationChunk,
    "chat_gen_chunk": ChatGenerationChunk,
}
GENERATION_TAGS: dict[type[Generation], str] = {cls: tag for tag, cls in _GENERATIONS.items()}
LEGACY_EXTRA = "example"


def _defaults(cls: type[BaseMessage], names: tuple[str, ...]) -> tuple[tuple[str, Any], ...]:
    fields = cls.model_fields
    return tuple(
        (
            n,
            _REQUIRED
            if fields[n].is_required()
            else fields[n].get_default(call_default_factory=True),
        )
        for n in names
    )


# (field, default) pairs used by encode.
ENCODE_FIELDS = {tag: _defaults(cls, f) for tag, (cls, f) in _MESSAGES.items()}
# What decode needs per tag, in one lookup: (class, allowed keys, name in errors, is AI /
# is chat).
MessageSpec = tuple[type[BaseMessage], frozenset[str], str, bool]
GenerationSpec = tuple[type[Generation], frozenset[str], str, bool]
_MESSAGE_SPECS: dict[str, MessageSpec] = {
    tag: (cls, frozenset({"t", LEGACY_EXTRA, *f}), f"{tag} message", tag in {"ai", "ai_chunk"})
    for tag, (cls, f) in _MESSAGES.items()
}
_GEN_KEYS = frozenset({"t", "text", "generation_info"})
_CHAT_GEN_KEYS = frozenset({"t", "message", "generation_info"})
_GENERATION_SPECS: dict[str, GenerationSpec] = {
    tag: (cls, _CHAT_GEN_KEYS if "chat" in tag else _GEN_KEYS, tag, "chat" in tag)
    for tag, cls in _GENERATIONS.items()
}
_V1_TAGS = frozenset({"ai", "human", "system", "tool", "chat", "function", "gen", "chat_gen"})
# Per readable format version: the generation and the message tags it may hold.
VERSIONS: dict[int, tuple[dict[str, GenerationSpec], dict[str, MessageSpec]]] = {
    1: (
        {t: v for t, v in _GENERATION_SPECS.items() if t in _V1_TAGS},
        {t: v for t, v in _MESSAGE_SPECS.items() if t in _V1_TAGS},
    ),
    2: (_GENERATION_SPECS, _MESSAGE_SPECS),
}
ENVELOPE_KEYS = frozenset({"v", "g"})
ENVELOPE_META_KEYS = frozenset({"v", "g", "meta"})
