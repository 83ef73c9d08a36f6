"""``gencache.cached()``: a chat model whose streams are answered from the cache too.

LangChain's ``BaseChatModel.stream()`` and ``astream()`` never read or write the LLM
cache, so for chat UIs, which stream everything, a cache does nothing.
:func:`cached` wraps any chat model in a :class:`CachedChatModel` that caches
``invoke``, ``ainvoke``, ``batch``, ``stream``, ``astream`` and ``astream_events`` with
one entry per request::

    from gencache import InMemoryCache, cached

    chat = cached(ChatOpenAI(model="gpt-4o-mini"), cache=InMemoryCache())
    for chunk in chat.stream("Hello"):  # a miss: the provider's chunks, as they come
        ...
    for chunk in chat.stream("Hello"):  # a hit: the same chunks, replayed
        ...
    chat.invoke("Hello")                # a hit too: the merged message

The key is LangChain's own, so ``invoke`` and ``stream`` of one request share one
entry, and entries written by the plain model with ``cache=`` are hits. A completed
stream is stored as the merged ``ChatGeneration`` LangChain's cache path would store,
with the chunk boundaries in its ``generation_info`` (:mod:`gencache._stream_entry`).
With a ``single_flight=True`` backend, concurrent identical streams make one provider
stream; the others wait for it and replay what it stored. Guide: ``docs/streaming.md``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import aclosing
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

from langchain_core.caches import BaseCache
from langchain_core.globals import get_llm_cache
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult, Generation
from langchain_core.runnables import Runnable
from pydantic import BaseModel, PrivateAttr, model_validator
from typing_extensions import override

from gencache._stream_entry import (
    STREAM_INFO_KEY,
    astream_through,
    check_delay,
    prompt_of,
    stream_through,
    without_boundaries,
)

if TYPE_CHECKING:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForLLMRun,
        CallbackManagerForLLMRun,
    )
    from langchain_core.runnables import RunnableConfig
    from langchain_core.tools import BaseTool

__all__ = ["STREAM_INFO_KEY", "CachedChatModel", "cached"]

logger = logging.getLogger(__name__)

# What the wrapper copies from the wrapped model when it is built, so that callbacks,
# tags and tracing metadata set on the model still apply through the wrapper.
_COPIED = ("name", "callbacks", "tags", "metadata", "verbose", "output_version", "profile")


def cached(
    model: BaseChatModel, cache: BaseCache | None = None, *, replay_delay: float = 0.0
) -> CachedChatModel:
    """Wrap a chat model so that its calls, streams included, are answered from a cache.

    Args:
        model: The chat model to wrap (any ``BaseChatModel``). A :class:`CachedChatModel`
            is unwrapped first: the result wraps its model.
        cache: Any LangChain ``BaseCache`` (a gencache backend or LangChain's own);
            ``None``: the global LLM cache (``set_llm_cache``) at the time of each call.
        replay_delay: Seconds to wait before each replayed chunk after the first, for
            UIs that want a hit to look live; ``0``: replay as fast as possible.

    Returns:
        A chat model that behaves as ``model`` and reads and writes ``cache``.

    Raises:
        TypeError: If ``model`` is not a chat model or ``cache`` not a ``BaseCache``.
        ValueError: If ``replay_delay`` is negative, NaN or infinite.
    """
    given: tuple[object, object] = (model, cache)  # checked at run time: callers pass anything
    if not isinstance(given[0], BaseChatModel):
        msg = f"model must be a langchain_core BaseChatModel, not {type(given[0]).__name__}"
        raise TypeError(msg)
    if given[1] is not None and not isinstance(given[1], BaseCache):
        msg = f"cache must be a langchain_core BaseCache or None, not {type(given[1]).__name__}"
        raise TypeError(msg)
    check_delay(replay_delay)
    if isinstance(model, CachedChatModel):
        model = model.model
    return CachedChatModel(model=model, cache=cache, replay_delay=replay_delay)


class CachedChatModel(BaseChatModel):
    """A chat model that answers from a cache, streams included; build it with :func:`cached`.

    Non-streaming calls (``invoke``, ``ainvoke``, ``batch``, ``generate``) take
    LangChain's own cache path with the wrapped model's key, except those LangChain
    streams (a handler asks for tokens: LangGraph's ``stream_mode="messages"``), which
    take the streams' path. ``stream`` and ``astream`` look the same key up first: a hit
    replays the stored chunks (``on_llm_new_token`` fires per chunk, ``astream_events``
    shows them, the message ids are the new run's unless the provider set them); a miss
    passes the provider's chunks through as they come and stores them only once the
    provider's stream is exhausted, so a stream that raises, or that the consumer closes
    or abandons before the end, stores nothing.
    Hits are never rate-limited: the wrapped model's ``rate_limiter`` applies to misses.

    ``bind_tools``, ``with_structured_output``, ``with_config``, LCEL and agents work
    as on the wrapped model: the first two ask the wrapped model and put this wrapper in
    its place in what it returns, so tool schemas reach the provider unchanged.

    Thread safety: safe to share between threads and tasks. The wrapper holds no state
    of its own between calls (each stream works on a private copy of it); the cache's own
    guarantees apply to the cache. With a ``single_flight=True`` backend, concurrent
    identical streams make one provider stream: the stream that looks the key up first
    owns it, the others wait (tasks await) and replay what it stored; one that fails or
    is closed early releases them, and they stream from the provider themselves.

    Costs: a call pays the cache's lookup plus the key (``dumps`` of the messages and
    the model's ``llm_string``, as LangChain's cache path does). A stream hit then
    checks the stored lengths (one pass, ~0.1 µs a chunk) and builds each chunk as it
    is consumed; a miss costs one list append per chunk and, after the last, merging the
    chunks and one ``update`` (~5 ms for 340 chunks). Add LangChain's own per-stream
    setup (callbacks, tracing) to both.

    Attributes:
        model: The wrapped chat model; its ``cache`` setting is never consulted.
        replay_delay: Seconds before each replayed chunk after the first.
    """

    model: BaseChatModel
    replay_delay: float = 0.0

    # Set only on the per-stream copy made by stream()/astream() or for an invoke that
    # LangChain streams (_streamed_view): the cache that this copy's _stream/_astream
    # read and write. On the shared instance it stays None: its _stream passes chunks
    # through uncached (for LangChain's v2 protocol streaming, whose cache path has
    # looked the key up already and stores the result itself).
    _stream_cache: BaseCache | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _inherit_settings(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("model"), BaseChatModel):
            inner = data["model"]
            data = {**{name: getattr(inner, name) for name in _COPIED}, **data}
        return data

    @model_validator(mode="after")
    def _check_arguments(self) -> CachedChatModel:
        if isinstance(self.model, CachedChatModel):
            msg = "model is already a CachedChatModel: use cached(), which unwraps it"
            raise TypeError(msg)
        check_delay(self.replay_delay)
        return self

    # -- identity: the wrapped model's, so keys, traces and token counts are its own ----

    @cached_property
    def _serialized(self) -> dict[str, Any]:
        # What tracers record and name the run by: the wrapped model, so that traces and
        # astream_events read as they did before the model was wrapped.
        return self.model._serialized

    @property
    @override
    def _llm_type(self) -> str:
        return self.model._llm_type

    @property
    @override
    def _identifying_params(self) -> Mapping[str, Any]:
        return self.model._identifying_params

    @override
    def _get_llm_string(self, stop: list[str] | None = None, **kwargs: Any) -> str:
        return self.model._get_llm_string(stop=stop, **kwargs)

    @override
    def _get_invocation_params(
        self, stop: list[str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        return self.model._get_invocation_params(stop=stop, **kwargs)

    @override
    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        return self.model._get_ls_params(stop=stop, **kwargs)

    @override
    def _combine_llm_outputs(self, llm_outputs: list[dict[str, Any] | None], /) -> dict[str, Any]:
        return self.model._combine_llm_outputs(llm_outputs)

    @override
    def _should_stream(
        self,
        *,
        async_api: bool,
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> bool:
        # Whether the model can stream, and whether streaming is disabled, are the wrapped
        # model's properties (its _stream, disable_streaming, streaming=...).
        return self.model._should_stream(async_api=async_api, run_manager=run_manager, **kwargs)

    @override
    def _should_use_protocol_streaming(
        self,
        *,
        async_api: bool,
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> bool:
        return self.model._should_use_protocol_streaming(
            async_api=async_api, run_manager=run_manager, **kwargs
        )

    @override
    def get_token_ids(self, text: str) -> list[int]:
        return self.model.get_token_ids(text)

    @override
    def get_num_tokens(self, text: str) -> int:
        return self.model.get_num_tokens(text)

    @override
    def get_num_tokens_from_messages(
        self, messages: list[BaseMessage], tools: Sequence[Any] | None = None
    ) -> int:
        return self.model.get_num_tokens_from_messages(messages, tools=tools)

    # -- tools and structured output: the wrapped model's, rewired to this wrapper -------

    @override
    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools as the wrapped model does (its format), to this cached model.

        Args:
            tools: The tools, in any form the wrapped model's ``bind_tools`` accepts.
            tool_choice: Passed to the wrapped model's ``bind_tools``.
            **kwargs: Passed to the wrapped model's ``bind_tools``.

        Returns:
            What the wrapped model's ``bind_tools`` returns, with this wrapper in the
            place of the wrapped model.

        Raises:
            NotImplementedError: If the wrapped model does not support tools, or returns
                a runnable in which the wrapped model cannot be found.
        """
        bound = self.model.bind_tools(tools, tool_choice=tool_choice, **kwargs)
        return cast("Runnable[LanguageModelInput, AIMessage]", self._rewire(bound, "bind_tools"))

    @override
    def with_structured_output(
        self, schema: dict[str, Any] | type, *, include_raw: bool = False, **kwargs: Any
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Return the wrapped model's structured-output runnable, calling this cached model.

        Args:
            schema: The output schema, as the wrapped model accepts it.
            include_raw: Passed to the wrapped model's ``with_structured_output``.
            **kwargs: Passed on too (``method=``, ``strict=``, ...).

        Returns:
            The wrapped model's runnable with this wrapper in the place of the model.

        Raises:
            NotImplementedError: If the wrapped model does not support it, or returns a
                runnable in which the wrapped model cannot be found.
        """
        runnable = self.model.with_structured_output(schema, include_raw=include_raw, **kwargs)
        return cast(
            "Runnable[LanguageModelInput, dict[str, Any] | BaseModel]",
            self._rewire(runnable, "with_structured_output"),
        )

    def _rewire(self, runnable: Runnable[Any, Any], method: str) -> Runnable[Any, Any]:
        swapped = _replace(runnable, self.model, self)
        if swapped is runnable:
            msg = (
                f"{type(self.model).__name__}.{method}() returned a runnable in which "
                "gencache cannot find the model it wraps, so it cannot be cached"
            )
            raise NotImplementedError(msg)
        return cast("Runnable[Any, Any]", swapped)

    # -- non-streaming calls: LangChain's cache path calls these on a miss ---------------

    @override
    def _convert_cached_generations(self, cache_val: list[Generation]) -> list[ChatGeneration]:
        # A hit through invoke returns what LangChain's cache path returns for a plain
        # entry: the chunk boundaries are this module's business, not the caller's.
        return super()._convert_cached_generations([without_boundaries(g) for g in cache_val])

    @override
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.model.rate_limiter:
            self.model.rate_limiter.acquire(blocking=True)
        if _takes_run_manager(self.model._generate):
            return self.model._generate(messages, stop=stop, run_manager=run_manager, **kwargs)
        return self.model._generate(messages, stop=stop, **kwargs)

    @override
    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.model.rate_limiter:
            await self.model.rate_limiter.aacquire(blocking=True)
        if _takes_run_manager(self.model._agenerate):
            return await self.model._agenerate(
                messages, stop=stop, run_manager=run_manager, **kwargs
            )
        return await self.model._agenerate(messages, stop=stop, **kwargs)

    @override
    def _generate_with_cache(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        view = self._streamed_view(False, run_manager, stop, kwargs)
        if view is None:
            return super()._generate_with_cache(messages, stop, run_manager, **kwargs)
        return BaseChatModel._generate_with_cache(view, messages, stop, run_manager, **kwargs)

    @override
    async def _agenerate_with_cache(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        view = self._streamed_view(True, run_manager, stop, kwargs)
        if view is None:
            return await super()._agenerate_with_cache(messages, stop, run_manager, **kwargs)
        return await BaseChatModel._agenerate_with_cache(
            view, messages, stop, run_manager, **kwargs
        )

    def _streamed_view(
        self,
        async_api: bool,
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
        stop: list[str] | None,
        kwargs: dict[str, Any],
    ) -> CachedChatModel | None:
        """The copy that answers an ``invoke`` LangChain streams (``None``: not streamed).

        ``invoke`` streams when a handler asks for tokens (LangGraph's
        ``stream_mode="messages"``, ``astream_events``): then the stream's cache path
        answers it, so a hit replays the stored chunks as tokens and a miss stores its
        chunks, and LangChain's own lookup and update are turned off for that call.
        """
        if self._stream_cache is not None or not self._should_stream(
            async_api=async_api, run_manager=run_manager, stop=stop, **kwargs
        ):
            return None
        if self._should_use_protocol_streaming(
            async_api=async_api, run_manager=run_manager, **kwargs
        ):
            return None  # LangChain's v2 event protocol: its own cache path, as before
        cache = self._resolve_cache()
        if cache is None:
            return None
        # No cache and no rate limiter on the copy: LangChain would apply its own limiter
        # before the lookup; misses are limited by the wrapped model's (_provider_stream).
        view = self.model_copy(update={"cache": False, "rate_limiter": None})
        view._stream_cache = cache
        return view

    # -- streams -------------------------------------------------------------------------

    @override
    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        """Stream the answer, from the cache when it holds the request.

        LangChain's ``BaseChatModel.stream`` runs the call (callbacks, tracing, ids,
        ``output_version``) on a private copy of this wrapper whose ``_stream`` reads and
        writes the cache; see the class docstring for what a hit and a miss do.
        """
        cache = self._resolve_cache()
        if cache is None:
            return super().stream(input, config, stop=stop, **kwargs)
        return BaseChatModel.stream(self._for_stream(cache), input, config, stop=stop, **kwargs)

    @override
    def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        """Async :meth:`stream`: the same behaviour, with the cache's async methods."""
        cache = self._resolve_cache()
        if cache is None:
            return super().astream(input, config, stop=stop, **kwargs)
        return BaseChatModel.astream(self._for_stream(cache), input, config, stop=stop, **kwargs)

    def _resolve_cache(self) -> BaseCache | None:
        # The same choice as LangChain's cache path: an instance, else the global cache.
        if isinstance(self.cache, BaseCache):
            return self.cache
        if self.cache is False:
            return None
        found = get_llm_cache()
        if found is None and self.cache is True:
            msg = "Asked to cache, but no cache found at `langchain.cache`."
            raise ValueError(msg)
        return found

    def _for_stream(self, cache: BaseCache) -> CachedChatModel:
        view = self.model_copy()
        view._stream_cache = cache
        return view

    @override
    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        def provider() -> Iterator[ChatGenerationChunk]:
            return self._provider_stream(messages, stop, run_manager, kwargs)

        cache = self._stream_cache
        if cache is None:
            yield from provider()
            return
        prompt, llm_string = prompt_of(messages), self._get_llm_string(stop=stop, **kwargs)
        # Not a plain return: the lookup must run when the consumer asks for the first
        # chunk, in its thread (and inside its gencache.control() block).
        yield from stream_through(cache, prompt, llm_string, provider, self.replay_delay)

    @override
    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        def provider() -> AsyncGenerator[ChatGenerationChunk, None]:
            return self._provider_astream(messages, stop, run_manager, kwargs)

        cache = self._stream_cache
        if cache is None:
            async for chunk in provider():
                yield chunk
            return
        prompt, llm_string = prompt_of(messages), self._get_llm_string(stop=stop, **kwargs)
        through = astream_through(cache, prompt, llm_string, provider, self.replay_delay)
        async with aclosing(through):  # closing this stream closes it now, in this task
            async for chunk in through:
                yield chunk

    def _provider_stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: CallbackManagerForLLMRun | None,
        kwargs: dict[str, Any],
    ) -> Iterator[ChatGenerationChunk]:
        if self.model.rate_limiter:
            self.model.rate_limiter.acquire(blocking=True)
        return self.model._stream(messages, stop=stop, run_manager=run_manager, **kwargs)

    async def _provider_astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: AsyncCallbackManagerForLLMRun | None,
        kwargs: dict[str, Any],
    ) -> AsyncGenerator[ChatGenerationChunk, None]:
        if self.model.rate_limiter:
            await self.model.rate_limiter.aacquire(blocking=True)
        async for chunk in self.model._astream(
            messages, stop=stop, run_manager=run_manager, **kwargs
        ):
            yield chunk


# -- helpers -----------------------------------------------------------------------------


def _takes_run_manager(method: Callable[..., Any]) -> bool:
    # LangChain's own test (BaseChatModel._generate_with_cache): some models' _generate
    # has no run_manager parameter.
    return "run_manager" in inspect.signature(method).parameters


def _replace(node: Any, old: Any, new: Any) -> Any:
    """``node`` with every ``old`` inside it replaced by ``new``; ``node`` if none is.

    Walks the declared fields of pydantic runnables (RunnableBinding.bound,
    RunnableSequence steps, RunnableParallel steps, fallbacks, ...), and the lists and
    dicts they hold, copying only what changes.
    """
    if node is old:
        return new
    if isinstance(node, Runnable) and isinstance(node, BaseModel):
        updates = {}
        for name in type(node).model_fields:
            value = getattr(node, name, None)
            swapped = _replace(value, old, new)
            if swapped is not value:
                updates[name] = swapped
        return node.model_copy(update=updates) if updates else node
    if isinstance(node, (list, tuple)):
        items = [_replace(item, old, new) for item in node]
        if any(a is not b for a, b in zip(items, node, strict=True)):
            return type(node)(items) if isinstance(node, tuple) else items
        return node
    if isinstance(node, dict):
        mapped = {key: _replace(value, old, new) for key, value in node.items()}
        if any(mapped[key] is not value for key, value in node.items()):
            return mapped
    return node
