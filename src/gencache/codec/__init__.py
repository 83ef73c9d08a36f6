"""A safe, versioned JSON codec for cached LLM responses (``Sequence[Generation]``).

The persistent backends store generations with :func:`encode` and read them back with
:func:`decode`, or :func:`decode_entry`, which also returns the entry's ``meta``. The
format is compact, deterministic, strict JSON (UTF-8, keys sorted, no ``NaN``/``Infinity``);
a string holding a lone surrogate switches the whole payload to ASCII ``\\uXXXX`` escapes,
so it round-trips (a high surrogate followed by a low one is refused: JSON would join
them). The full reference, with examples, is docs/codec.md::

    {"g":[<generation>, ...][,"meta":{...}],"v":2}

    <generation> := {"t":"gen"|"gen_chunk","text":str[,"generation_info":{...}]}
                  | {"t":"chat_gen"|"chat_gen_chunk","message":<message>[,"generation_info":{...}]}
    <message>    := {"t":<tag>,"content":str|list[,<field>:<value>...]}

``"g"`` holds at least one generation (an empty hit would make every LangChain call raise
``IndexError``). ``"meta"`` is the backend's plain JSON data (Redis: key, prompt,
llm_string, times). Version 1 (gencache 0.1: no chunk tags, no ``"meta"``) is still read.

Message tags, each with the fields it may carry (a field at its default is omitted):
``ai`` (``AIMessage``: ``content``, ``additional_kwargs``, ``response_metadata``, ``name``,
``id``, ``tool_calls``, ``invalid_tool_calls``, ``usage_metadata``); ``human``, ``system``,
``function`` (the first five); ``tool`` (those five, ``tool_call_id``, ``artifact``,
``status``); ``chat`` (those five, ``role``); ``<tag>_chunk`` for each ``*MessageChunk``
(the fields of ``<tag>``; ``ai_chunk`` also ``tool_call_chunks``, ``chunk_position``). Any
tag may carry ``example``, the legacy extra LangChain keeps. Every class comes back as
itself, chunks included; ``ChatGeneration.text`` is derived again from the message.

What comes back as what. Plain JSON data (``dict`` with ``str`` keys, ``list``, ``str``,
``int``, finite ``float``, ``bool``, ``None``) comes back equal, subclasses (``IntEnum``,
``OrderedDict``) as the base type; it takes a fast path. Anything else is stored in its
faithful JSON form and comes back as that form: a pydantic model as
``model_dump(mode="json", by_alias=True)`` (only if ``Model.model_validate`` of that dict
rebuilds an equal model, since that is what langchain-openai's parser does on a hit), a
dataclass as its dict, ``tuple`` as ``list``, ``set``/``frozenset`` as a ``list`` sorted by
each item's JSON text, a non-``str`` dict key as the string pydantic writes (``1`` ->
``"1"``, ``None`` -> ``"None"``, ``True`` -> ``"true"``), and ``datetime``, ``date``,
``time``, ``timedelta``, ``Decimal``, ``UUID``, ``Enum``, UTF-8 ``bytes``, ``Path`` and
the rest as ``pydantic_core.to_jsonable_python`` renders them (``"2024-05-01T12:00:00Z"``,
``"PT1M30S"``, ``"1.10"``, the enum's value, ...).

Refused with :class:`CodecError`: any other generation or message class, a message extra
other than ``example``, no generation, a value with no JSON form (an arbitrary object, an
iterator, ``NaN``/``Infinity`` anywhere, non-UTF-8 bytes, an integer too long to print, two
dict keys that become one string, a model not rebuilt equal), non-plain ``meta``, and any
payload :func:`decode` would refuse.

Safety: decoding builds only the classes of the allow-list above, by calling them with the
declared fields; an unknown tag or field is an error, never ignored. Every value inside
those fields stays plain JSON data: a dict such as ``{"lc": 1, "type": "secret", ...}`` is
kept as an inert dict. Nothing is ever unpickled, imported, looked up by name or loaded with
``langchain_core.load``. Before parsing, on the raw bytes, a decode refuses a
payload over :data:`MAX_PAYLOAD_BYTES`, holding more than :data:`MAX_CONTAINERS` arrays and
objects or nested deeper than :data:`MAX_DEPTH`, so its time and memory are bounded. Every
failure raises :class:`CodecError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.outputs import Generation

from gencache.codec._bounds import (
    MAX_CONTAINERS,
    MAX_DEPTH,
    MAX_PAYLOAD_BYTES,
    check_size,
    check_structure,
)
from gencache.codec._build import decode_generation, encode_generation
from gencache.codec._convert import check_json, jsonable, plain_meta
from gencache.codec._errors import CodecError, NotPlain
from gencache.codec._tags import ENVELOPE_KEYS, ENVELOPE_META_KEYS, FORMAT_VERSION, VERSIONS
from gencache.codec._text import dump, parse

__all__ = [
    "FORMAT_VERSION",
    "MAX_CONTAINERS",
    "MAX_DEPTH",
    "MAX_PAYLOAD_BYTES",
    "CodecError",
    "decode",
    "decode_entry",
    "encode",
]


def encode(generations: Sequence[Generation], *, meta: Mapping[str, Any] | None = None) -> bytes:
    """Encode generations as a compact, deterministic UTF-8 JSON envelope.

    Args:
        generations: The generations to store, at least one. Values that are not plain
            JSON data are stored in their JSON form (see the module docstring).
        meta: Plain JSON data stored beside them (``str`` keys; JSON values, not
            converted), read back by :func:`decode_entry`; ``None`` writes no ``"meta"``.

    Returns:
        The payload, UTF-8 JSON such as ``b'{"g":[...],"v":2}'`` (pure ASCII, with
        ``\\uXXXX`` escapes, when a string holds a lone surrogate, so it round-trips).

    Raises:
        CodecError: If there is no generation, an item or message class is not supported,
            a value has no JSON form (an arbitrary object, ``NaN``, an integer too long to
            print, two dict keys that become one string, a surrogate pair written as two
            code points), ``meta`` is not plain JSON data, or the payload would be refused
            by :func:`decode` (nested deeper than :data:`MAX_DEPTH`, more than
            :data:`MAX_CONTAINERS` arrays and objects, over :data:`MAX_PAYLOAD_BYTES`).
    """
    items: object = generations  # checked at run time: callers may pass anything
    if isinstance(items, (str, bytes, bytearray)) or not isinstance(items, Sequence):
        msg = f"expected a sequence of Generation, not {type(items).__name__}"
        raise CodecError(msg)
    if not items:
        msg = "no generations: an empty cached value would break every call that reads it"
        raise CodecError(msg)
    envelope: dict[str, Any] = {"v": FORMAT_VERSION, "g": [encode_generation(g) for g in items]}
    if meta is not None:
        envelope["meta"] = plain_meta(meta)
    try:
        try:
            check_json(envelope["g"], 2)
        except NotPlain:  # the slow path: convert, then the result is plain JSON
            envelope["g"] = jsonable(envelope["g"], 2)
        payload = dump(envelope)
    except CodecError:
        raise
    except (ValueError, TypeError, RecursionError) as exc:
        msg = f"cannot encode generations: {type(exc).__name__}: {str(exc)[:100]}"
        raise CodecError(msg) from exc
    check_size(len(payload))
    # A container takes two bytes or more: a payload this small cannot hold too many.
    if len(payload) > 2 * MAX_CONTAINERS:
        openers = payload.count(b"[") + payload.count(b"{")
        if openers > MAX_CONTAINERS:  # check_json bounded the depth already
            check_structure(payload, openers, depth=False)
    return payload


def _decode(data: bytes | bytearray | memoryview | str) -> tuple[list[Generation], Any]:
    """Return the generations and the envelope's ``"meta"`` (``None`` when absent)."""
    envelope = parse(data)
    if type(envelope) is not dict or (
        envelope.keys() != ENVELOPE_KEYS and envelope.keys() != ENVELOPE_META_KEYS
    ):
        msg = 'payload is not a {"v","g"[,"meta"]} envelope'
        raise CodecError(msg)
    version = envelope["v"]
    specs = VERSIONS.get(version) if type(version) is int else None
    if specs is None:
        msg = f"unsupported format version {version!r:.20}"
        raise CodecError(msg)
    meta = None
    if len(envelope) == 3:
        meta = envelope["meta"]
        if type(meta) is not dict or version == 1:
            msg = '"meta" must be a JSON object (and is not in version 1)'
            raise CodecError(msg)
    items = envelope["g"]
    if type(items) is not list or not items:
        msg = '"g" must be a non-empty JSON array'
        raise CodecError(msg)
    generations, messages = specs
    return [decode_generation(item, generations, messages) for item in items], meta


def decode_entry(
    data: bytes | bytearray | memoryview | str,
) -> tuple[list[Generation], dict[str, Any]]:
    """Decode a payload written by :func:`encode` into generations and their metadata.

    Args:
        data: The payload, UTF-8 bytes (or an already decoded ``str``), of format version
            1 or 2.

    Returns:
        A new, non-empty list of generation objects, each of the class it was written
        as, and the ``meta`` written with them (plain JSON data; ``{}`` when none was).

    Raises:
        CodecError: If the payload is over :data:`MAX_PAYLOAD_BYTES`, holds more than
            :data:`MAX_CONTAINERS` arrays and objects or nests deeper than
            :data:`MAX_DEPTH` (all checked before parsing), is not strict UTF-8 JSON, not
            an envelope of a known version, holds no generation, an unknown tag or field,
            or a value LangChain's classes refuse.
    """
    generations, meta = _decode(data)
    return generations, {} if meta is None else meta


def decode(data: bytes | bytearray | memoryview | str) -> list[Generation]:
    """Decode a payload written by :func:`encode` into new generation objects.

    Same as :func:`decode_entry` without the metadata.

    Args:
        data: The payload, UTF-8 bytes (or an already decoded ``str``).

    Returns:
        A new, non-empty list of generation objects, each of the class it was written as.

    Raises:
        CodecError: As :func:`decode_entry`.
    """
    return _decode(data)[0]
