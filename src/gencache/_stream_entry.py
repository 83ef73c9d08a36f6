"""The stored form of a completed stream, and its replay (for :mod:`gencache.langchain`).

A completed stream is stored as the one merged ``ChatGeneration`` that LangChain's cache
path stores for the request, with the chunk boundaries in its ``generation_info`` under
:data:`STREAM_INFO_KEY`::

    {"v": 1, "n": [len, ...], "x": {"<i>": {...}}}

``"n"`` is the length of each chunk's text (slices of the stored message's text, so the
text is stored once); ``"c"`` replaces it, holding each chunk's content, when a chunk's
content is not a ``str`` (``output_version="v1"`` content blocks); ``"x"`` holds, by
chunk index, the other fields of the chunks that carry any (see ``_FIELDS``). It is plain
JSON data, so it goes through every backend's codec unchanged. Guide: ``docs/streaming.md``.

Replay trusts nothing it reads: boundaries that do not fit the stored text replay the
message whole, and a chunk whose other fields are malformed replays its text only.

:func:`stream_through` and :func:`astream_through` run one stream through a cache: the
lookup, then the replay of a hit or the recording of a miss, which is stored only once
the provider's stream is exhausted; a miss that raises or is closed before stores
nothing and releases the key's single-flight waiters, who then call the provider
themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import math
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import aclosing
from typing import Any

from langchain_core.caches import BaseCache
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, Generation
from langchain_core.utils.utils import LC_ID_PREFIX

from gencache._cache import GenCache
from gencache._flight import STREAM_LOOKUP

__all__ = [
    "STREAM_INFO_KEY",
    "astream_through",
    "check_delay",
    "prompt_of",
    "stream_through",
    "without_boundaries",
]

logger = logging.getLogger(__name__)

STREAM_INFO_KEY = "gencache_stream"
"""The ``generation_info`` key of a stored stream's chunk boundaries."""

_FORMAT = 1  # version of the boundaries' layout, stored with them
# Per chunk, the fields kept besides its text, as (short key, AIMessageChunk field).
_FIELDS = (
    ("ak", "additional_kwargs"),
    ("rm", "response_metadata"),
    ("name", "name"),
    ("tc", "tool_call_chunks"),
    ("u", "usage_metadata"),
    ("pos", "chunk_position"),
)
_EXTRA_KEYS = frozenset({"id", "gi", *(short for short, _ in _FIELDS)})


def prompt_of(messages: list[BaseMessage]) -> str:
    """The cache prompt of a chat request: exactly LangChain's own.

    As ``BaseChatModel._generate_with_cache`` keys it (``stream()`` hands ``_stream`` the
    same normalised messages that ``invoke()`` hands it): ``dumps`` of the messages
    without their ids, so ``invoke`` and ``stream`` of one request share one entry.
    """
    normalized = [
        m.model_copy(update={"id": None}) if getattr(m, "id", None) is not None else m
        for m in messages
    ]
    return dumps(normalized)


def check_delay(delay: object) -> None:
    """Raise unless ``delay`` is a finite number of seconds ``>= 0`` (``replay_delay``).

    Raises:
        TypeError: If ``delay`` is not an ``int`` or ``float`` (``bool`` is refused).
        ValueError: If it is negative, NaN or infinite.
    """
    if isinstance(delay, bool) or not isinstance(delay, (int, float)):
        msg = f"replay_delay must be a number of seconds, not {type(delay).__name__}"
        raise TypeError(msg)
    if not math.isfinite(delay) or delay < 0:
        msg = f"replay_delay must be finite and >= 0, not {delay!r}"
        raise ValueError(msg)


def stream_through(
    cache: BaseCache,
    prompt: str,
    llm_string: str,
    provider: Callable[[], Iterator[ChatGenerationChunk]],
    delay: float,
) -> Iterator[ChatGenerationChunk]:
    """One stream through ``cache``: replay a hit, or pass ``provider()``'s chunks through.

    The lookup runs at the first chunk and the update past the last, both in the thread
    that iterates. Under single-flight the lookup makes this stream the key's owner, whose
    update lands the flight, or waits for the owner and replays its answer.

    Args:
        cache: The cache to read and write.
        prompt: The key's prompt (LangChain's ``dumps`` of the messages).
        llm_string: The key's model configuration.
        provider: Starts the provider's stream; called only on a miss.
        delay: Seconds to wait before each replayed chunk after the first.
    """
    found = cache.lookup(prompt, llm_string)
    replayed = _replay(found) if isinstance(found, list) else None
    if replayed is None:
        yield from _record(cache, prompt, llm_string, provider())
        return
    for i, chunk in enumerate(replayed):
        if i and delay:
            time.sleep(delay)
        yield chunk


async def astream_through(
    cache: BaseCache,
    prompt: str,
    llm_string: str,
    provider: Callable[[], AsyncGenerator[ChatGenerationChunk, None]],
    delay: float,
) -> AsyncGenerator[ChatGenerationChunk, None]:
    """Async :func:`stream_through`, in the iterating task; a single-flight waiter awaits."""
    # The stream lands or releases its own flight: the task of this lookup may end first.
    marked = STREAM_LOOKUP.set(True)
    try:
        found = await cache.alookup(prompt, llm_string)
    finally:
        STREAM_LOOKUP.reset(marked)
    replayed = _replay(found) if isinstance(found, list) else None
    if replayed is None:
        # aclosing: closing this stream closes the recorder (and the provider's stream)
        # now, in this task, rather than whenever asyncio finalizes them.
        async with aclosing(_arecord(cache, prompt, llm_string, provider())) as recorder:
            async for chunk in recorder:
                yield chunk
        return
    for i, chunk in enumerate(replayed):
        if i and delay:
            await asyncio.sleep(delay)
        yield chunk


def _entry(chunks: list[ChatGenerationChunk]) -> list[Generation]:
    """The cache entry of a completed stream: the merged generation plus the boundaries.

    Call it once ``BaseChatModel.stream`` has finished with every chunk (it sets the
    run's id and merges ``generation_info`` into ``response_metadata`` before yielding
    each): merging them then gives what LangChain's cache path stores when ``invoke()``
    streams internally. The entry is a deep copy, since the consumer holds the chunks and
    may change them. Cost: one merge and one deep copy, O(chunks).
    """
    merged = generate_from_stream(iter(chunks)).generations[0]
    contents = [c.message.content for c in chunks]
    split: dict[str, Any] = {"v": _FORMAT}
    if all(type(c) is str for c in contents):
        split["n"] = [len(c) for c in contents]
    else:
        split["c"] = contents
    extras = {str(i): x for i, c in enumerate(chunks) if (x := _extras(c))}
    if extras:
        split["x"] = extras
    info = {**(merged.generation_info or {}), STREAM_INFO_KEY: split}
    generation = ChatGeneration(message=merged.message, generation_info=info)
    return [generation.model_copy(deep=True)]


def _record(
    cache: BaseCache, prompt: str, llm_string: str, provider: Iterator[ChatGenerationChunk]
) -> Iterator[ChatGenerationChunk]:
    """Pass the provider's chunks through as they come; store them once it is exhausted.

    The store happens when the consumer asks for the chunk after the provider's last
    one, in the consumer's thread. A provider error, or a close of this generator (the
    consumer stopped reading), stores nothing and calls :func:`_release`.
    """
    chunks: list[ChatGenerationChunk] = []
    try:
        for chunk in provider:
            chunks.append(chunk)
            yield chunk
    except BaseException:  # GeneratorExit too: a stream closed half way
        _release(cache, prompt, llm_string)
        raise
    if chunks:
        cache.update(prompt, llm_string, _entry(chunks))
    else:  # LangChain raises for an empty stream; nothing to store, nobody to keep waiting
        _release(cache, prompt, llm_string)


async def _arecord(
    cache: BaseCache,
    prompt: str,
    llm_string: str,
    provider: AsyncGenerator[ChatGenerationChunk, None],
) -> AsyncGenerator[ChatGenerationChunk, None]:
    """Async :func:`_record`, with the cache's ``aupdate``; closing it closes ``provider``."""
    chunks: list[ChatGenerationChunk] = []
    try:
        async with aclosing(provider):
            async for chunk in provider:
                chunks.append(chunk)
                yield chunk
    except BaseException:  # GeneratorExit, CancelledError too
        _release(cache, prompt, llm_string)
        raise
    if chunks:
        await cache.aupdate(prompt, llm_string, _entry(chunks))
    else:
        _release(cache, prompt, llm_string)


def _release(cache: BaseCache, prompt: str, llm_string: str) -> None:
    """Release the single-flight waiters of a stream miss that stores nothing.

    A gencache backend stores nothing for an update without generations, and settles
    the key's flight as failed: its waiters return a miss and call the provider
    themselves. That is in-process work with no I/O, so it is safe while a generator is
    being closed and on an event loop, whichever thread or task closes the stream (an
    ``async for`` left with ``break`` is closed later by asyncio, in a task of its own,
    where LangChain's error callback would not reach the owner's flight). LangChain's own
    caches would store the empty list: they are left alone (they have no flights).
    """
    if isinstance(cache, GenCache):
        # Called while an error or a close unwinds the stream, which must go on unchanged.
        with contextlib.suppress(Exception):
            cache.update(prompt, llm_string, [])


def _extras(chunk: ChatGenerationChunk) -> dict[str, Any]:
    message = chunk.message
    out: dict[str, Any] = {}
    # An id LangChain derived from the run ("lc_run-..."): the replay gets its own run's.
    if message.id is not None and not message.id.startswith(LC_ID_PREFIX):
        out["id"] = message.id
    for short, name in _FIELDS:
        value = getattr(message, name, None)
        if value:
            out[short] = value
    if chunk.generation_info:
        out["gi"] = chunk.generation_info
    return out


def without_boundaries(generation: Generation) -> Generation:
    """``generation`` without the chunk boundaries (what a non-streaming hit returns)."""
    info = generation.generation_info
    if not info or STREAM_INFO_KEY not in info:
        return generation
    rest = {k: v for k, v in info.items() if k != STREAM_INFO_KEY}
    return generation.model_copy(update={"generation_info": rest or None})


def _replay(found: list[Generation]) -> Iterator[ChatGenerationChunk] | None:
    """The chunks to replay for a cache hit, built lazily; ``None`` for an empty hit.

    An entry with valid boundaries replays chunk by chunk; any other entry (written by
    ``invoke``, by the plain model, or tampered with) replays as one chunk holding the
    whole message. Every chunk is new: changing it never changes the cache.
    """
    if not found:
        return None
    generation = found[0]
    info = generation.generation_info or {}
    pieces = _pieces(info.get(STREAM_INFO_KEY), generation)
    if pieces is not None:
        extras = info[STREAM_INFO_KEY].get("x")
        return _chunks(pieces, extras if type(extras) is dict else {})
    if STREAM_INFO_KEY in info:
        logger.warning("stored stream boundaries are malformed: replaying the message whole")
    return iter([_one_chunk(generation)])


def _pieces(split: Any, generation: Generation) -> Iterator[str | list[Any]] | None:
    """Each chunk's content, lazily, if ``split`` splits the message; else ``None``.

    What is checked before the first chunk is yielded is what a replay cannot recover
    from half way: that the lengths add up to the stored text (or that every content is
    there). That is a few C-level passes over one list, about 20 ns a chunk; each
    chunk's other fields are checked as it is built (see :func:`_chunks`).
    """
    if type(split) is not dict or split.get("v") != _FORMAT:
        return None
    message = getattr(generation, "message", None)
    if not isinstance(message, AIMessage):
        return None
    text = message.content
    lengths = split.get("n")
    if type(lengths) is list and lengths and type(text) is str:
        if set(map(type, lengths)) != {int} or min(lengths) < 0 or sum(lengths) != len(text):
            return None
        return _slices(text, lengths)
    contents = split.get("c")
    if type(contents) is list and contents and set(map(type, contents)) <= {str, list}:
        return (copy.deepcopy(c) for c in contents)
    return None


def _slices(text: str, lengths: list[int]) -> Iterator[str]:
    start = 0
    for n in lengths:
        yield text[start : start + n]
        start += n


def _chunks(
    pieces: Iterator[str | list[Any]], extras: dict[str, Any]
) -> Iterator[ChatGenerationChunk]:
    for i, piece in enumerate(pieces):
        fields = extras.get(str(i)) if extras else None
        if fields is None:
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
            continue
        try:
            yield _chunk(piece, fields)
        except (TypeError, ValueError):  # pydantic's ValidationError is a ValueError
            # A tampered entry: the text is known good (checked up front), the rest not.
            logger.warning("a stored stream chunk is malformed: replaying its text only")
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece))


def _chunk(piece: str | list[Any], extras: Any) -> ChatGenerationChunk:
    if type(extras) is not dict or not extras.keys() <= _EXTRA_KEYS:
        msg = "stored chunk fields are not a dict of known fields"
        raise ValueError(msg)
    fields: dict[str, Any] = {"content": piece}
    if "id" in extras:
        fields["id"] = extras["id"]
    for short, name in _FIELDS:
        if short in extras:
            # A copy: on the in-memory backend the stored dicts are the cache's own.
            fields[name] = copy.deepcopy(extras[short])
    info = extras.get("gi")
    if info is not None and type(info) is not dict:
        msg = "stored generation_info is not a dict"
        raise TypeError(msg)
    message = AIMessageChunk(**fields)
    return ChatGenerationChunk(message=message, generation_info=copy.deepcopy(info))


def _one_chunk(generation: Generation) -> ChatGenerationChunk:
    """One chunk holding a whole stored message (an entry written without boundaries)."""
    info = copy.deepcopy(generation.generation_info)
    message = getattr(generation, "message", None)
    if not isinstance(message, AIMessage):
        text = message.content if isinstance(message, BaseMessage) else generation.text
        chunk = AIMessageChunk(content=copy.deepcopy(text), chunk_position="last")
        return ChatGenerationChunk(message=chunk, generation_info=info)
    ident = message.id
    try:
        chunk = AIMessageChunk(
            content=copy.deepcopy(message.content),
            additional_kwargs=copy.deepcopy(message.additional_kwargs),
            response_metadata=copy.deepcopy(message.response_metadata),
            name=message.name,
            id=None if ident is None or ident.startswith(LC_ID_PREFIX) else ident,
            # AIMessageChunk turns these into tool_call_chunks (args as JSON text).
            tool_calls=copy.deepcopy(message.tool_calls),
            invalid_tool_calls=copy.deepcopy(message.invalid_tool_calls),
            usage_metadata=_provider_usage(message.usage_metadata),
            chunk_position="last",
        )
    except (TypeError, ValueError):  # pydantic's ValidationError is a ValueError
        logger.warning("a stored message is malformed: replaying its content only")
        chunk = AIMessageChunk(content=copy.deepcopy(message.content), chunk_position="last")
    return ChatGenerationChunk(message=chunk, generation_info=info)


def _provider_usage(usage: Any) -> Any:
    """The usage as the provider reported it, or ``None`` if it reported none.

    LangChain's own cache path marks a hit by swapping in a copy of the message whose
    usage has ``"total_cost": 0`` added, on the hit's ``Generation`` itself. A backend
    that shares hits' generations (the in-memory one; single-flight waiters of one
    flight) then holds that mark, which is no usage of the provider's, and without token
    counts is not even a valid usage of a chunk.
    """
    if not usage:
        return None
    reported = {k: v for k, v in usage.items() if k != "total_cost"}
    return copy.deepcopy(reported) or None
