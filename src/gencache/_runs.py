"""What gencache learns from LangChain's runs: who is calling, when the run started, what failed.

One callback handler, registered once per process with
``langchain_core.tracers.context.register_configure_hook`` (how LangChain plugs in its own
tracers), is added to every LLM and chat-model run. It runs inline (in the run's own thread
or task), never raises and holds no state:

- ``on_llm_start`` / ``on_chat_model_start`` set :data:`RUN_STARTED`, so that the
  ``update`` of the same run knows how long the provider took (for the savings);
- ``on_llm_start`` / ``on_llm_end`` hand LLM usage reported in ``llm_output`` only to
  :mod:`gencache._usage`;
- ``on_llm_error`` tells every registered failure listener (single-flight's flights) that
  the caller of this run failed, so that its waiters stop waiting at once.

Thread-safe. Registering is O(1); the error fan-out is O(listeners).
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Hashable
from contextvars import ContextVar
from typing import Any, Final, Protocol

from langchain_core.callbacks import BaseCallbackHandler

from gencache._usage import note_end, note_start

__all__ = [
    "RUNS_SEEN",
    "RUN_STARTED",
    "FailureListener",
    "listen_for_failures",
    "owner_of_this_call",
    "provider_seconds",
    "watch_runs",
]

#: When the LLM run of this context started (monotonic), set by the watcher below: an
#: update in the same run knows how long the provider took (lookup + call), for savings.
RUN_STARTED: ContextVar[float | None] = ContextVar("gencache_run_started", default=None)

RUNS_SEEN: Final[list[bool]] = []
"""Empty until the watcher first sees an LLM run start in this process.

While it is empty :data:`RUN_STARTED` is ``None`` in every context, so the in-memory
write path tests it, ``RUNS_SEEN and RUN_STARTED.get()``, instead of reading the context
variable: one global read, where the read cost a write ~30 ns (5 % of the write).
"""


def _started() -> None:
    if not RUNS_SEEN:
        RUNS_SEEN.append(True)
    RUN_STARTED.set(time.monotonic())


def provider_seconds() -> float | None:
    """Seconds since this context's LLM run started, or ``None`` outside a watched run."""
    started = RUN_STARTED.get()
    return None if started is None else time.monotonic() - started


def owner_of_this_call() -> Hashable:
    """Who is calling: the running asyncio task (a tuple), else this thread (its ident).

    The two kinds never compare equal: an ``int`` for a thread, ``("task", id(task))``
    for a task. Synchronous cache calls always use the thread's ident (one C call), even
    inside a task; the failure report above covers both.
    """
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running event loop: a plain thread
        task = None
    return ("task", id(task)) if task is not None else threading.get_ident()


class FailureListener(Protocol):
    """What is told that a caller's LLM run failed (single-flight's flights)."""

    def fail_owner(self, owner: Hashable) -> int:
        """Give up what ``owner`` was doing; return how many things that ended."""


_listeners: weakref.WeakSet[FailureListener] = weakref.WeakSet()
_lock = threading.Lock()
_hooked = False


class _RunWatcher(BaseCallbackHandler):
    """Times LLM runs, notes usage given in ``llm_output`` only, reports failed callers."""

    run_inline = True
    raise_error = False

    def on_llm_start(self, serialized: Any, prompts: Any, **kwargs: Any) -> None:
        _started()
        note_start(kwargs.get("run_id"), kwargs.get("batch_size"))

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        note_end(response, kwargs.get("run_id"))

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        _started()

    def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        owner = owner_of_this_call()
        # A synchronous cache call made inside a task (``model.invoke`` in an ``async
        # def``, a notebook cell) claimed under this thread's ident: fail those too. At
        # worst that releases other such calls of this event loop's thread early, and
        # their waiters pay for themselves, rather than waiting out flight_timeout.
        owners = (owner,) if type(owner) is not tuple else (owner, threading.get_ident())
        with _lock:
            listeners = list(_listeners)
        for listener in listeners:
            for who in owners:
                listener.fail_owner(who)


# The default is the handler itself, on purpose: LangChain adds a hook's handler to a run
# when ``var.get()`` is not None, and a default reaches every context (new threads too).
# The handler holds no state, so sharing it is safe.
_watcher_var: ContextVar[BaseCallbackHandler | None] = ContextVar(
    "gencache_flight_watcher",
    default=_RunWatcher(),  # noqa: B039
)


def listen_for_failures(listener: FailureListener) -> None:
    """Tell ``listener`` of every failed LLM run from now on (held weakly)."""
    with _lock:
        _listeners.add(listener)
    watch_runs()


def watch_runs() -> None:
    """Add the watcher to every LangChain run from now on (once per process).

    Registered by the first cache built, not at import: ``import gencache`` changes
    nothing in LangChain.
    """
    global _hooked  # noqa: PLW0603
    with _lock:
        if _hooked:
            return
        _hooked = True
    from langchain_core.tracers.context import register_configure_hook

    register_configure_hook(_watcher_var, inheritable=True)
