"""``NodeCache``: LangGraph's node cache (``graph.compile(cache=...)``) over any gencache backend.

LangGraph caches a node's writes under ``(namespace, key)``: the namespace names the node
(``("__pregel_ns_writes", "module.function", "node")``), the key is a digest of its input,
and ``CachePolicy(ttl=...)`` gives the lifetime. :class:`NodeCache` stores each such pair
as one ordinary gencache entry, through the public cache calls only (``lookup`` /
``update`` / ``clear`` and their async twins, inside :func:`gencache._control.control`),
so every backend's bound, eviction policy, expiry, statistics, error policy and
process-safety apply to node results exactly as they apply to LLM answers::

    prompt     = "gencache.langgraph:" + JSON [namespace, key]   (never a LangChain prompt)
    llm_string = LLM_STRING  (names NodeCache and its stored format; never a model's)
    scope      = "gencache.langgraph:" + JSON namespace           (one scope per node)
    value      = [Generation(text=f"{type}:{base64(bytes)}")]    (LangGraph's serializer)
    ttl        = CachePolicy.ttl, through control(ttl=...)

With a ``single_flight=True`` backend, concurrent identical node runs coalesce: the
first ``get`` that misses a key owns its flight and runs the node, LangGraph's ``set``
of that key lands it, and the other runs wait for it and take its result as a hit. A
run that fails, or ends without storing the key, releases them (see :class:`NodeCache`).

Install with ``pip install 'gencache[langgraph]'``; ``import gencache`` never imports
this module nor langgraph.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import threading
import weakref
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

try:
    from langgraph.cache.base import BaseCache, FullKey, Namespace
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    msg = "gencache.langgraph needs the langgraph package: pip install 'gencache[langgraph]'"
    raise ImportError(msg, name="langgraph") from exc

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import Generation

from gencache._cache import GenCache
from gencache._control import Control, control
from gencache._runs import owner_of_this_call

__all__ = ["LLM_STRING", "SCOPE_PREFIX", "NodeCache"]

_log = logging.getLogger(__name__)

SCOPE_PREFIX: Final = "gencache.langgraph:"
"""The start of every node entry's prompt and scope; keep it out of your own scopes."""

LLM_STRING: Final = "gencache.langgraph.NodeCache/1 langgraph-jsonplus"
"""The ``llm_string`` of every node entry: names the stored format, so a change of it
(a new version) makes old entries misses instead of misreadings."""

# The type tags JsonPlusSerializer.dumps_typed writes with pickle off. "json" (its
# legacy reviver, which imports classes) and "pickle" are refused before the serializer
# sees the data, whatever the serializer's own settings.
_TAGS: Final = frozenset({"null", "bytes", "bytearray", "msgpack"})

_MISS: Final = object()  # a stored value may be None itself

# The most keys a NodeCache remembers as looked up and not yet stored (runs that vanish
# without a signal would otherwise leave theirs forever); the oldest are forgotten.
_OWNED_MAX: Final = 4096


def _strict_serializer(allowed_types: Iterable[type | tuple[str, str]]) -> JsonPlusSerializer:
    """LangGraph's serializer with pickle off and revival limited to its safe types.

    ``allowed_msgpack_modules=None`` is LangGraph's strict mode: only the types of
    ``SAFE_MSGPACK_TYPES`` (datetime, UUID, Decimal, set, deque, paths, LangChain messages
    and documents, ``Send``, ``Command``, ...) are rebuilt; any other class named by stored
    data comes back as its plain payload, never imported. Without it (LangGraph's default,
    unless ``LANGGRAPH_STRICT_MSGPACK`` is set) stored data can name any importable callable.
    """
    extra: list[type | tuple[str, str]] = []
    for item in allowed_types:
        is_pair = (
            isinstance(item, tuple) and len(item) == 2 and all(isinstance(p, str) for p in item)
        )
        if not (isinstance(item, type) or is_pair):
            msg = (
                "allowed_types must hold classes or (module, name) pairs of str, "
                f"not {type(item).__name__} ({item!r})"
            )
            raise TypeError(msg)
        extra.append(item)
    return JsonPlusSerializer(
        pickle_fallback=False,
        allowed_json_modules=None,
        allowed_msgpack_modules=tuple(extra) or None,
    )


@dataclass(frozen=True, slots=True)
class _Scope:
    """The backend scope of one LangGraph namespace, and the control() that selects it."""

    name: str
    control: Control


def _check_backend(backend: Any) -> GenCache:
    if not isinstance(backend, GenCache):
        msg = (
            "NodeCache needs a gencache cache (InMemoryCache, SQLiteCache, RedisCache), "
            f"not {type(backend).__name__}"
        )
        raise TypeError(msg)
    return backend


def _check_namespace(namespace: Any) -> Namespace:
    if not isinstance(namespace, tuple) or not all(isinstance(p, str) for p in namespace):
        msg = f"a namespace must be a tuple of str, not {namespace!r}"
        raise TypeError(msg)
    return namespace


def _prompt(namespace: Namespace, key: Any) -> str:
    if not isinstance(key, str):
        msg = f"a cache key must be a str, not {type(key).__name__}"
        raise TypeError(msg)
    # JSON of the pair is injective, and the prefix keeps it from parsing as a chat prompt.
    return SCOPE_PREFIX + json.dumps([list(namespace), key], separators=(",", ":"))


class NodeCache(BaseCache[Any]):
    """A LangGraph ``BaseCache`` that keeps node results in a gencache backend.

    Pass it to ``graph.compile(cache=NodeCache(backend))`` (or ``@entrypoint(cache=...)``)
    with any gencache cache: :class:`~gencache.InMemoryCache` (one process),
    :class:`~gencache.SQLiteCache` (bounded, shared by the processes of one machine),
    :class:`~gencache.RedisCache` (a fleet; native async). The backend may also serve
    LLM calls: node entries have their own prompts, ``llm_string`` and scopes, so the two
    never meet, and both count in the backend's ``maxsize``, ``len()`` and ``stats()``.

    ``CachePolicy(ttl=...)`` is each entry's ``ttl`` (``None``: the backend's own
    ``ttl``; ``<= 0``: not stored). Options of an enclosing ``gencache.control()`` that
    NodeCache does not set apply too (``read=False`` bypasses node results, ``write=False``
    stores none, ``max_age``); its ``scope`` does not: a node's scope is its namespace.

    Values go through LangGraph's ``JsonPlusSerializer`` in strict mode (see
    ``docs/langgraph.md``): no pickle, and only the types LangGraph itself writes are
    rebuilt; an entry that cannot be read is a miss, logged, and overwritten when the
    node runs again. A value the serializer refuses is not stored (a warning), and the
    graph goes on.

    Single-flight: with a backend built with ``single_flight=True``, a run whose
    ``get`` misses a key owns that key's flight and runs the node; the runs that ``get``
    the key meanwhile wait (threads block, tasks await: the event loop runs on) and take
    the owner's result as a hit once LangGraph's ``set`` stores it, from whichever
    thread or task LangGraph calls it. The owner's run releases them, and they run the
    node themselves, when it raises anywhere (a LangChain ``on_chain_error`` in the
    owner's thread or task: a node that fails, an interrupt, a cancelled run), when it
    ends without storing the key (its outermost run's ``on_chain_end``; the owner task's
    end), and when the result is not stored (``ttl <= 0``, or a value the serializer
    refuses). The backend's ``flight_timeout`` bounds every wait. Keys are looked up in a
    sorted order, so two runs that each need several keys never wait for each other.

    Thread- and task-safe, and process-safe when the backend is. Costs: ``get`` is one
    backend lookup per key plus a base64 and msgpack decode; ``set`` one update per pair;
    ``clear`` one scoped backend clear per namespace. ``aget`` looks its keys up one
    after the other, in the calling task (the flights' owner); ``aset`` and ``aclear``
    run their keys concurrently.

    Args:
        backend: The gencache cache to store in.
        allowed_types: More classes (or ``(module, name)`` pairs) to rebuild from stored
            data, such as the pydantic models of a graph's state. Exact names only; any
            class listed can be constructed with stored arguments, so list only your own
            data classes.

    Raises:
        TypeError: If ``backend`` is not a gencache cache or ``allowed_types`` holds
            something other than classes and pairs of ``str``.
    """

    def __init__(
        self, backend: GenCache, *, allowed_types: Iterable[type | tuple[str, str]] = ()
    ) -> None:
        super().__init__(serde=_strict_serializer(allowed_types))
        self._backend = _check_backend(backend)
        # Namespace -> its scope and the control() selecting it, reused so that a lookup
        # stays on control()'s cached path. Also the namespaces that clear() without
        # arguments reaches: the public cache API cannot list scopes.
        self._scopes: dict[Namespace, _Scope] = {}
        self._lock = threading.Lock()
        # (scope, prompt) -> the thread or task whose get missed it and whose run has not
        # stored it yet: the single-flight owner to release if that run fails. Kept on
        # any backend (whether it coalesces is the backend's business): a dict entry.
        self._owned: OrderedDict[tuple[str, str], Hashable] = OrderedDict()
        _watch(self)

    @property
    def backend(self) -> GenCache:
        """The gencache cache that holds the entries."""
        return self._backend

    def __repr__(self) -> str:
        return f"NodeCache({self._backend!r})"

    def _scope(self, namespace: Any) -> _Scope:
        found = self._scopes.get(namespace) if type(namespace) is tuple else None
        if found is None:
            namespace = _check_namespace(namespace)
            name = SCOPE_PREFIX + json.dumps(list(namespace), separators=(",", ":"))
            with self._lock:
                found = self._scopes.setdefault(namespace, _Scope(name, control(scope=name)))
        return found

    def _known(self) -> list[_Scope]:
        with self._lock:
            return list(self._scopes.values())

    # -- values -----------------------------------------------------------------------------

    def _encode(self, value: Any) -> list[Generation] | None:
        try:
            tag, data = self.serde.dumps_typed(value)
        except Exception as exc:  # the node ran and its writes stand; only caching fails
            _log.warning(
                "gencache: LangGraph cannot serialize this node result (%s: %s); not cached",
                type(exc).__name__,
                exc,
            )
            return None
        return [Generation(text=f"{tag}:{base64.b64encode(data).decode('ascii')}")]

    def _decode(self, full: FullKey, hit: Sequence[Generation] | None) -> Any:
        if hit is None:
            return _MISS
        if len(hit) != 1:
            problem = f"{len(hit)} generations instead of 1"
        else:
            tag, _, text = hit[0].text.partition(":")
            if tag not in _TAGS:
                problem = f"serializer type {tag[:20]!r} is not one LangGraph writes without pickle"
            else:
                try:
                    return self.serde.loads_typed((tag, base64.b64decode(text, validate=True)))
                except Exception as exc:  # binascii.Error, msgpack errors, ...: all a miss
                    problem = f"{type(exc).__name__}: {exc}"
        _log.warning(
            "gencache: unreadable node cache entry in %s (%s); treated as a miss", full[0], problem
        )
        return _MISS

    def _write(
        self, value: Any, ttl: Any
    ) -> tuple[AbstractContextManager[object], list[Generation]] | None:
        """The ttl control and the value of one write, or ``None`` if it stores nothing."""
        lifetime: AbstractContextManager[object] = nullcontext()
        if ttl is not None:
            if not isinstance(ttl, bool) and isinstance(ttl, (int, float)) and ttl <= 0:
                return None  # expired as soon as written, as in LangGraph's own caches
            lifetime = control(ttl=ttl)
        generations = self._encode(value)
        return None if generations is None else (lifetime, generations)

    # -- single-flight: who owns which key ---------------------------------------------

    def _missed(self, scope: _Scope, prompt: str, owner: Hashable) -> None:
        with self._lock:
            self._owned[scope.name, prompt] = owner
            if len(self._owned) > _OWNED_MAX:
                self._owned.popitem(last=False)

    def _stored(self, scope: _Scope, prompt: str) -> None:
        with self._lock:
            self._owned.pop((scope.name, prompt), None)

    def _release(self, scope: str, prompt: str) -> None:
        """Fail the key's flight: its waiters run the node themselves. No I/O.

        A gencache backend stores nothing for an update without generations and settles
        the key's single-flight as failed (docs/single-flight.md).
        """
        with control(scope=scope), contextlib.suppress(Exception):
            self._backend.update(prompt, LLM_STRING, [])

    def _release_owner(self, owner: Hashable) -> None:
        """Release the flights of the keys ``owner`` missed and has not stored.

        Called by the LangChain callback that sees the owner's run fail or end; O(keys
        in the air).
        """
        if not self._owned:  # the common case, for every chain run of the process
            return
        with self._lock:
            mine = [k for k, who in self._owned.items() if who == owner]
            for k in mine:
                del self._owned[k]
        for scope, prompt in mine:
            self._release(scope, prompt)

    def _ordered(self, keys: Sequence[FullKey]) -> list[tuple[FullKey, _Scope, str]]:
        # One global order of lookups: a run that owns one key and waits for another can
        # then never be waited for by the owner of that other key (no cycle).
        looked = [(full, self._scope(full[0]), _prompt(*full)) for full in keys]
        return sorted(looked, key=lambda item: (item[1].name, item[2]))

    # -- LangGraph's BaseCache --------------------------------------------------------------

    def get(self, keys: Sequence[FullKey]) -> dict[FullKey, Any]:
        """Return the cached values of those ``(namespace, key)`` pairs that have one.

        With a single-flight backend, a key another run is computing is waited for.

        Raises:
            TypeError: If a namespace is not a tuple of ``str`` or a key not a ``str``.
            BackendError: Only from a backend built with ``strict=True``.
        """
        owner = _looked_up_by(owner_of_this_call())
        found: dict[FullKey, Any] = {}
        for full, scope, prompt in self._ordered(keys):
            with scope.control:
                hit = self._backend.lookup(prompt, LLM_STRING)
            if hit is None:
                self._missed(scope, prompt, owner)
            value = self._decode(full, hit)
            if value is not _MISS:
                found[full] = value
        return found

    async def aget(self, keys: Sequence[FullKey]) -> dict[FullKey, Any]:
        """Async :meth:`get`; waiting for another run's key never blocks the event loop.

        The keys are looked up one after the other, in this task, so that this task
        (the graph run's) owns the flights of its misses, and its end releases them.
        """
        owner = _looked_up_by(owner_of_this_call())
        found: dict[FullKey, Any] = {}
        for full, scope, prompt in self._ordered(keys):
            with scope.control:
                hit = await self._backend.alookup(prompt, LLM_STRING)
            if hit is None:
                self._missed(scope, prompt, owner)
            value = self._decode(full, hit)
            if value is not _MISS:
                found[full] = value
        return found

    def set(self, pairs: Mapping[FullKey, tuple[Any, int | None]]) -> None:
        """Store each value under its ``(namespace, key)`` with its ttl in seconds.

        A value that is not stored (``ttl <= 0``, or refused by the serializer) releases
        the key's single-flight waiters, who then run the node themselves.

        Raises:
            TypeError: As :meth:`get`, or if a ttl is not a number or ``None``.
            BackendError: Only from a backend built with ``strict=True``.
        """
        for (namespace, key), (value, ttl) in pairs.items():
            scope, prompt = self._scope(namespace), _prompt(namespace, key)
            write = self._write(value, ttl)
            self._stored(scope, prompt)
            if write is None:
                self._release(scope.name, prompt)
                continue
            lifetime, generations = write
            with scope.control, lifetime:
                self._backend.update(prompt, LLM_STRING, generations)

    async def aset(self, pairs: Mapping[FullKey, tuple[Any, int | None]]) -> None:
        """Async :meth:`set`: the pairs are stored concurrently."""

        async def one(namespace: Namespace, key: str, value: Any, ttl: Any) -> None:
            scope, prompt = self._scope(namespace), _prompt(namespace, key)
            write = self._write(value, ttl)
            self._stored(scope, prompt)
            if write is None:
                self._release(scope.name, prompt)
                return
            lifetime, generations = write
            with scope.control, lifetime:
                await self._backend.aupdate(prompt, LLM_STRING, generations)

        await asyncio.gather(*(one(ns, k, v, t) for (ns, k), (v, t) in pairs.items()))

    def clear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        """Delete the entries of those namespaces (``graph.clear_cache()`` names them all).

        With ``None``: the namespaces this NodeCache has read, written or cleared in this
        process, never the backend's other entries (LLM answers sharing it). Entries only
        other processes wrote stay: clear them by namespace, or with ``backend.clear()``
        when the backend holds nothing else.

        Raises:
            TypeError: If a namespace is not a tuple of ``str``.
            BackendError: Only from a backend built with ``strict=True``.
        """
        targets = self._known() if namespaces is None else [self._scope(ns) for ns in namespaces]
        for target in targets:
            self._backend.clear(scope=target.name)

    async def aclear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        """Async :meth:`clear`: the namespaces are cleared concurrently."""
        targets = self._known() if namespaces is None else [self._scope(ns) for ns in namespaces]

        await asyncio.gather(*(self._backend.aclear(scope=target.name) for target in targets))


# -- the LangChain hook that sees a run fail or end -------------------------------------
#
# LangGraph's cache API says nothing when a node fails: only its set() on success. The
# failure is seen the way gencache._flight sees a failing LLM call: a handler added to
# every LangChain run through register_configure_hook (how LangChain plugs in tracers).
# It runs inline, in the thread or task of the run. That is not always the one that
# called get(): LangGraph reports an async graph's failure from a task of its own
# (asyncio.shield), and a node's from the node's task. Both copy the context of the
# task that called aget(), so get() and aget() leave their caller's identity in a
# ContextVar, and the handler releases the keys of the owner it finds there too.

_caches: weakref.WeakSet[NodeCache] = weakref.WeakSet()
_caches_lock = threading.Lock()
_hooked = False
_last_lookup: ContextVar[Hashable | None] = ContextVar("gencache_node_owner", default=None)


def _looked_up_by(owner: Hashable) -> Hashable:
    """Note ``owner`` as the caller of a lookup in this context; return it."""
    if _last_lookup.get() != owner:
        _last_lookup.set(owner)
    return owner


class _RunWatcher(BaseCallbackHandler):
    """Releases the node flights of a thread or task whose run failed or ended."""

    run_inline = True
    raise_error = False

    # Chain events only: skipping the rest keeps the handler off token streams.
    ignore_llm = ignore_chat_model = ignore_retriever = ignore_agent = True
    ignore_retry = ignore_custom_event = True

    def on_chain_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        # Any failure in the owner's thread or task: a node of its run failed, or the run.
        # Releasing early (a node that a RetryPolicy runs again) costs the waiters a run
        # of their own, never a wrong result.
        _release(owner_of_this_call())

    def on_chain_end(
        self,
        outputs: dict[str, Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        # The outermost run ended: LangGraph has awaited its set() calls by then, so a key
        # still owned was never stored (an interrupt, a step that did not run).
        if parent_run_id is None:
            _release(owner_of_this_call())


def _release(owner: Hashable) -> None:
    """Release the keys of ``owner``, and of the last lookup's caller in this context."""
    owners = {owner, _last_lookup.get()} - {None}
    with _caches_lock:
        caches = list(_caches)
    for cache in caches:
        for who in owners:
            cache._release_owner(who)


# The default is the handler itself, on purpose: LangChain adds a hook's handler to a run
# when ``var.get()`` is not None, and a default reaches every context (new threads too).
_watcher_var: ContextVar[BaseCallbackHandler | None] = ContextVar(
    "gencache_node_watcher",
    default=_RunWatcher(),  # noqa: B039  # stateless, so sharing it is safe
)


def _watch(cache: NodeCache) -> None:
    global _hooked  # noqa: PLW0603
    with _caches_lock:
        _caches.add(cache)
        if _hooked:
            return
        _hooked = True
    from langchain_core.tracers.context import register_configure_hook

    register_configure_hook(_watcher_var, inheritable=True)
