"""Generations and messages to and from the envelope's JSON objects, by the allow-list."""

from __future__ import annotations

from typing import Any, cast

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import Generation

from gencache.codec._convert import check_json
from gencache.codec._errors import CodecError, NotPlain
from gencache.codec._tags import (
    ENCODE_FIELDS,
    GENERATION_TAGS,
    LEGACY_EXTRA,
    MESSAGE_TAGS,
    GenerationSpec,
    MessageSpec,
)

__all__ = ["decode_generation", "encode_generation"]


# -- encode ----------------------------------------------------------------------------------


def _encode_message(message: BaseMessage) -> dict[str, Any]:
    tag = MESSAGE_TAGS.get(type(message))
    if tag is None:
        msg = f"unsupported message type {type(message).__name__}"
        raise CodecError(msg)
    out: dict[str, Any] = {"t": tag}
    for name, default in ENCODE_FIELDS[tag]:
        value = getattr(message, name)
        if value is not default and (type(value) is not type(default) or value != default):
            out[name] = value
    for name, value in (message.__pydantic_extra__ or {}).items():
        if name != LEGACY_EXTRA:
            msg = f"unsupported extra field {name!r} on {type(message).__name__}"
            raise CodecError(msg)
        out[name] = value
    return out


def encode_generation(generation: Any) -> dict[str, Any]:
    """Return the JSON object of ``generation``, its values not yet checked.

    Raises:
        CodecError: If its class, its message's class or an extra field is not allowed.
    """
    tag = GENERATION_TAGS.get(type(generation))
    if tag is None:
        msg = f"unsupported generation type {type(generation).__name__}"
        raise CodecError(msg)
    if tag[0] == "g":  # gen, gen_chunk
        out: dict[str, Any] = {"t": tag, "text": generation.text}
    else:
        out = {"t": tag, "message": _encode_message(generation.message)}
    if generation.generation_info is not None:
        out["generation_info"] = generation.generation_info
    return out


# -- decode ----------------------------------------------------------------------------------


def _fields(obj: dict[str, Any], allowed: frozenset[str], what: str) -> dict[str, Any]:
    """Return ``obj`` without its tag ``"t"``, after checking that its keys are allowed.

    ``obj`` is changed in place (a fresh object of the parsed payload): one pass over its
    keys, no copy, no allocation unless it is refused.
    """
    if not obj.keys() <= allowed:
        unknown = obj.keys() - allowed
        msg = f"unknown field(s) in {what}: {sorted(unknown)[:5]!r:.100}"
        raise CodecError(msg)
    del obj["t"]
    return obj


def _build(cls: type[Any], what: str, kwargs: dict[str, Any]) -> Any:
    try:
        return cls(**kwargs)
    except Exception as exc:  # pydantic/LangChain validators raise many types
        msg = f"invalid {what}: {type(exc).__name__}"
        raise CodecError(msg) from exc


def _decode_message(obj: Any, specs: dict[str, MessageSpec]) -> BaseMessage:
    tag = obj.get("t") if type(obj) is dict else None
    spec = specs.get(tag) if type(tag) is str else None
    if spec is None:
        msg = f"unknown message tag {tag!r:.40}"
        raise CodecError(msg)
    cls, keys, what, ai = spec
    kwargs = _fields(obj, keys, what)
    if "content" not in kwargs:
        msg = f"{what} has no content"
        raise CodecError(msg)
    message: BaseMessage = _build(cls, what, kwargs)
    if ai:
        # AIMessage(Chunk) derives tool_calls from JSON strings (in additional_kwargs or
        # tool_call_chunks) with its own lenient parser (NaN, 1e400 -> inf, any depth):
        # refuse what encode would refuse.
        # Depth 5: envelope {, "g" [, generation {, message {, tool_calls [.
        try:
            check_json(cast("AIMessage", message).tool_calls, 5)
        except NotPlain:  # json parsers build nothing else; kept for safety
            msg = f"{what} has tool call arguments that are not JSON data"
            raise CodecError(msg) from None
    return message


def decode_generation(
    obj: Any, specs: dict[str, GenerationSpec], messages: dict[str, MessageSpec]
) -> Generation:
    """Build the generation of the parsed JSON object ``obj`` (changed in place).

    Args:
        obj: One item of the envelope's ``"g"``.
        specs: The generation tags of the payload's version.
        messages: The message tags of the payload's version.

    Raises:
        CodecError: If a tag or field is unknown, or LangChain's classes refuse a value.
    """
    tag = obj.get("t") if type(obj) is dict else None
    spec = specs.get(tag) if type(tag) is str else None
    if spec is None:
        msg = f"unknown generation tag {tag!r:.40}"
        raise CodecError(msg)
    cls, keys, what, chat = spec
    kwargs = _fields(obj, keys, what)
    if chat:
        if "message" not in kwargs:
            msg = f"{what} has no message"
            raise CodecError(msg)
        kwargs["message"] = _decode_message(kwargs["message"], messages)
    generation: Generation = _build(cls, what, kwargs)
    return generation
