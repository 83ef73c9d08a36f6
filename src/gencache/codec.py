"""A safe, versioned JSON codec for cached LLM responses (``Sequence[Generation]``).

The SQLite and Redis backends store generations outside the process with :func:`encode`
and read them back with :func:`decode`. The format is compact, strict JSON: UTF-8, keys
sorted, no ``NaN``/``Infinity`` (nor numbers out of float range); strings holding a lone
surrogate (which UTF-8 cannot carry) switch the whole payload to ASCII with ``\\uXXXX``
escapes, so they round-trip (a high surrogate followed by a low one is refused: JSON
would join the two escapes into one character)::

    {"g":[<generation>, ...],"v":1}

    <generation> := {"t":"gen","text":str[,"generation_info":{...}]}
                  | {"t":"chat_gen","message":<message>[,"generation_info":{...}]}
    <message>    := {"t":<tag>,"content":str|list[,<field>:<value>...]}

Message tags and the fields each may carry (fields at their default are omitted):

* ``ai`` (``AIMessage``): ``content``, ``additional_kwargs``, ``response_metadata``,
  ``name``, ``id``, ``tool_calls``, ``invalid_tool_calls``, ``usage_metadata``;
* ``human``, ``system``, ``function`` (``HumanMessage``, ``SystemMessage``,
  ``FunctionMessage``): ``content``, ``additional_kwargs``, ``response_metadata``,
  ``name``, ``id``;
* ``tool`` (``ToolMessage``): those five plus ``tool_call_id``, ``artifact``, ``status``;
* ``chat`` (``ChatMessage``): those five plus ``role``;
* every tag may also carry ``example``, the legacy field LangChain keeps as an extra.

Chunks are stored as the finished objects LangChain's own cache path produces:
``GenerationChunk`` decodes as ``Generation``, ``ChatGenerationChunk`` as
``ChatGeneration``, and a ``*MessageChunk`` as its non-chunk class, like
``langchain_core.messages.message_chunk_to_message`` (for ``AIMessageChunk`` the
``tool_calls`` already parsed from ``tool_call_chunks`` are kept; ``tool_call_chunks`` and
``chunk_position`` are dropped; an ``example`` extra is kept, which LangChain drops).
``ChatGeneration.text`` is not stored: it is derived again from the message.

:func:`encode` refuses what would not come back equal: any other class, a message extra
other than ``example``, and values that are not plain JSON data (``datetime``, pydantic
models, tuples, sets, non-``str`` dict keys, ``NaN``/``Infinity``, data nested deeper than
:data:`MAX_DEPTH`).

Safety: decoding builds only the classes of the allow-list below, by calling them with the
declared fields named in the allow-list; an unknown tag or field is an error, never ignored.
Every value inside those fields stays plain JSON data (``dict``, ``list``, ``str``, ``int``,
``float``, ``bool``, ``None``): a dict such as ``{"lc": 1, "type": "secret", ...}`` is kept
as an inert dict. Nothing is ever unpickled, imported, looked up by name or loaded with
``langchain_core.load``. Payloads nested deeper than :data:`MAX_DEPTH` are refused before
parsing. Every failure raises :class:`CodecError`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from itertools import accumulate
from typing import Any, cast

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

__all__ = ["FORMAT_VERSION", "MAX_DEPTH", "CodecError", "decode", "encode"]

FORMAT_VERSION: int = 1
"""Version written in the envelope's ``"v"``; any other version is refused."""

MAX_DEPTH: int = 100
"""Deepest nesting of JSON arrays/objects accepted, the envelope's own object included."""


class CodecError(ValueError):
    """The generations cannot be encoded, or the payload cannot be decoded."""


_REQUIRED = object()
_BASE_FIELDS = ("content", "additional_kwargs", "response_metadata", "name", "id")
_MESSAGE_CLASSES: dict[str, type[BaseMessage]] = {
    "ai": AIMessage,
    "human": HumanMessage,
    "system": SystemMessage,
    "tool": ToolMessage,
    "chat": ChatMessage,
    "function": FunctionMessage,
}
_MESSAGE_FIELDS: dict[str, tuple[str, ...]] = {
    "ai": (*_BASE_FIELDS, "tool_calls", "invalid_tool_calls", "usage_metadata"),
    "human": _BASE_FIELDS,
    "system": _BASE_FIELDS,
    "tool": (*_BASE_FIELDS, "tool_call_id", "artifact", "status"),
    "chat": (*_BASE_FIELDS, "role"),
    "function": _BASE_FIELDS,
}
_MESSAGE_TAGS: dict[type[BaseMessage], str] = {
    **{cls: tag for tag, cls in _MESSAGE_CLASSES.items()},
    AIMessageChunk: "ai",
    HumanMessageChunk: "human",
    SystemMessageChunk: "system",
    ToolMessageChunk: "tool",
    ChatMessageChunk: "chat",
    FunctionMessageChunk: "function",
}
_LEGACY_EXTRA = "example"


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


# (field, default) pairs used by encode; the allowed keys used by decode.
_ENCODE_FIELDS = {tag: _defaults(_MESSAGE_CLASSES[tag], f) for tag, f in _MESSAGE_FIELDS.items()}
_DECODE_KEYS = {tag: frozenset({"t", _LEGACY_EXTRA, *f}) for tag, f in _MESSAGE_FIELDS.items()}
_MESSAGE_WHAT = {tag: f"{tag} message" for tag in _MESSAGE_FIELDS}  # for error messages
_GEN_KEYS = frozenset({"t", "text", "generation_info"})
_CHAT_GEN_KEYS = frozenset({"t", "message", "generation_info"})
_ENVELOPE_KEYS = frozenset({"v", "g"})

_SCALARS = frozenset({str, int, bool, type(None)})
_OPTIONS: dict[str, Any] = {
    "allow_nan": False,
    "sort_keys": True,
    "separators": (",", ":"),
    "check_circular": False,  # _check_json bounds the depth first
}
_ENCODER = json.JSONEncoder(ensure_ascii=False, **_OPTIONS)
_ASCII_ENCODER = json.JSONEncoder(ensure_ascii=True, **_OPTIONS)  # for lone surrogates
# A JSON string, possibly unterminated (then it runs to the end): linear, never backtracks.
_STRING_RE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET_RE = re.compile(r"[^\[\]{}]+")
# A high surrogate code point followed by a low one: written as two \uXXXX escapes, JSON
# decoders join them into one character, so such a str cannot round-trip.
_SPLIT_PAIR_RE = re.compile("[\ud800-\udbff][\udc00-\udfff]")
_BRACKET_DELTA = {"[": 1, "{": 1, "]": -1, "}": -1}


def _reject_constant(name: str) -> Any:
    msg = f"non-finite number {name} is not allowed"
    raise CodecError(msg)


def _finite_float(text: str) -> float:
    # json turns a finite-looking literal out of float range (1e400, or 10**5 digits) into
    # inf, which encode refuses: such a payload was not written by encode.
    value = float(text)
    if not math.isfinite(value):
        msg = f"number {text[:20]}... overflows a float"
        raise CodecError(msg)
    return value


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def _check_json(value: Any, depth: int) -> None:
    """Raise unless the dict or list ``value``, nested ``depth`` deep, is plain finite JSON."""
    if depth > MAX_DEPTH:
        msg = f"data nested deeper than {MAX_DEPTH} levels"
        raise CodecError(msg)
    if isinstance(value, dict):
        for key in value:
            if type(key) is not str and not isinstance(key, str):
                msg = f"dict key of type {type(key).__name__} is not a JSON string"
                raise CodecError(msg)
        value = value.values()
    for item in value:
        kind = type(item)
        if kind in _SCALARS:
            continue
        if kind is dict or kind is list:
            _check_json(item, depth + 1)
        elif isinstance(item, float):
            if not math.isfinite(item):
                msg = f"non-finite float {item!r} is not allowed"
                raise CodecError(msg)
        elif isinstance(item, (dict, list)):
            _check_json(item, depth + 1)
        elif not isinstance(item, (str, int)):  # str/int subclasses (enums) print as JSON
            msg = f"value of type {kind.__name__} is not JSON data"
            raise CodecError(msg)


def _encode_message(message: BaseMessage) -> dict[str, Any]:
    tag = _MESSAGE_TAGS.get(type(message))
    if tag is None:
        msg = f"unsupported message type {type(message).__name__}"
        raise CodecError(msg)
    out: dict[str, Any] = {"t": tag}
    for name, default in _ENCODE_FIELDS[tag]:
        value = getattr(message, name)
        if value is not default and (type(value) is not type(default) or value != default):
            out[name] = value
    for name, value in (message.__pydantic_extra__ or {}).items():
        if name != _LEGACY_EXTRA:
            msg = f"unsupported extra field {name!r} on {type(message).__name__}"
            raise CodecError(msg)
        out[name] = value
    return out


def _encode_generation(generation: Any) -> dict[str, Any]:
    kind = type(generation)
    if kind is Generation or kind is GenerationChunk:
        out: dict[str, Any] = {"t": "gen", "text": generation.text}
    elif kind is ChatGeneration or kind is ChatGenerationChunk:
        out = {"t": "chat_gen", "message": _encode_message(generation.message)}
    else:
        msg = f"unsupported generation type {kind.__name__}"
        raise CodecError(msg)
    if generation.generation_info is not None:
        out["generation_info"] = generation.generation_info
    return out


def encode(generations: Sequence[Generation]) -> bytes:
    """Encode generations as a compact, deterministic UTF-8 JSON envelope.

    Args:
        generations: The generations to store (chunks are stored as their final classes).

    Returns:
        The payload, UTF-8 JSON such as ``b'{"g":[...],"v":1}'`` (pure ASCII, with
        ``\\uXXXX`` escapes, when a string holds a lone surrogate, so it round-trips).

    Raises:
        CodecError: If an item or message class is not supported, a value is not plain
            finite JSON data (e.g. a ``datetime``, a tuple, a non-``str`` key), the data is
            nested deeper than :data:`MAX_DEPTH`, an integer is too long to print, or a
            string holds a high surrogate followed by a low one (JSON would join them).
    """
    items: object = generations  # checked at run time: callers may pass anything
    if isinstance(items, (str, bytes, bytearray)) or not isinstance(items, Sequence):
        msg = f"expected a sequence of Generation, not {type(items).__name__}"
        raise CodecError(msg)
    envelope = {"v": FORMAT_VERSION, "g": [_encode_generation(g) for g in items]}
    try:
        _check_json(envelope, 1)
        text = _ENCODER.encode(envelope)
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: keep it as a \uXXXX escape
            if _SPLIT_PAIR_RE.search(text):  # only here: text without surrogates pays nothing
                msg = "a string holds a surrogate pair as two code points, which JSON joins"
                raise CodecError(msg) from None
            return _ASCII_ENCODER.encode(envelope).encode("ascii")
    except CodecError:
        raise
    except (ValueError, TypeError, RecursionError) as exc:
        msg = f"cannot encode generations: {type(exc).__name__}: {str(exc)[:100]}"
        raise CodecError(msg) from exc


def _parse(data: bytes | bytearray | memoryview | str) -> Any:
    payload: object = data  # checked at run time: callers may pass anything
    if isinstance(payload, str):
        text = payload
    elif isinstance(payload, (bytes, bytearray, memoryview)):
        try:
            text = str(payload, "utf-8")
        except (UnicodeDecodeError, TypeError, ValueError, BufferError) as exc:
            msg = "payload is not valid UTF-8"
            raise CodecError(msg) from exc
    else:
        msg = f"payload must be bytes or str, not {type(payload).__name__}"
        raise CodecError(msg)
    if text.count("[") + text.count("{") > MAX_DEPTH:
        brackets = _NOT_BRACKET_RE.sub("", _STRING_RE.sub("", text))
        if max(accumulate(map(_BRACKET_DELTA.__getitem__, brackets)), default=0) > MAX_DEPTH:
            msg = f"payload nested deeper than {MAX_DEPTH} levels"
            raise CodecError(msg)
    try:
        return _DECODER.decode(text)
    except CodecError:
        raise
    except (ValueError, RecursionError) as exc:
        msg = f"payload is not valid JSON: {str(exc)[:100]}"
        raise CodecError(msg) from exc


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


def _decode_message(obj: Any) -> BaseMessage:
    tag = obj.get("t") if type(obj) is dict else None
    if type(tag) is not str or tag not in _MESSAGE_CLASSES:
        msg = f"unknown message tag {tag!r:.40}"
        raise CodecError(msg)
    what = _MESSAGE_WHAT[tag]
    kwargs = _fields(obj, _DECODE_KEYS[tag], what)
    if "content" not in kwargs:
        msg = f"{what} has no content"
        raise CodecError(msg)
    message: BaseMessage = _build(_MESSAGE_CLASSES[tag], what, kwargs)
    if tag == "ai":
        # AIMessage derives tool_calls from JSON strings in additional_kwargs with its own
        # lenient parser (NaN, 1e400 -> inf, any depth): refuse what encode would refuse.
        # Depth 5: envelope {, "g" [, generation {, message {, tool_calls [.
        _check_json(cast("AIMessage", message).tool_calls, 5)
    return message


def _decode_generation(obj: Any) -> Generation:
    tag = obj.get("t") if type(obj) is dict else None
    if tag == "chat_gen":
        kwargs = _fields(obj, _CHAT_GEN_KEYS, "chat generation")
        if "message" not in kwargs:
            msg = "chat generation has no message"
            raise CodecError(msg)
        kwargs["message"] = _decode_message(kwargs["message"])
        cls: type[Generation] = ChatGeneration
    elif tag == "gen":
        kwargs = _fields(obj, _GEN_KEYS, "generation")
        cls = Generation
    else:
        msg = f"unknown generation tag {tag!r:.40}"
        raise CodecError(msg)
    generation: Generation = _build(cls, tag, kwargs)
    return generation


def decode(data: bytes | bytearray | memoryview | str) -> list[Generation]:
    """Decode a payload written by :func:`encode` into new generation objects.

    Args:
        data: The payload, UTF-8 bytes (or an already decoded ``str``).

    Returns:
        A new list of ``Generation``/``ChatGeneration`` objects.

    Raises:
        CodecError: If the payload is not strict UTF-8 JSON nested at most
            :data:`MAX_DEPTH` deep, not an envelope of version :data:`FORMAT_VERSION`, or
            holds an unknown tag or field or a value LangChain's classes refuse.
    """
    envelope = _parse(data)
    if type(envelope) is not dict or envelope.keys() != _ENVELOPE_KEYS:
        msg = 'payload is not a {"v","g"} envelope'
        raise CodecError(msg)
    version = envelope["v"]
    if type(version) is not int or version != FORMAT_VERSION:
        msg = f"unsupported format version {version!r:.20}"
        raise CodecError(msg)
    items = envelope["g"]
    if type(items) is not list:
        msg = '"g" must be a JSON array'
        raise CodecError(msg)
    return [_decode_generation(item) for item in items]
