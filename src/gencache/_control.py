"""Per-call options: ``gencache.control()``, carried by ``contextvars``.

``control(read=False)`` and its siblings set options for every cache call made inside a
``with`` block or a decorated function, without threading a parameter through LangChain.
A ``ContextVar`` is the carrier because it reaches everywhere LangChain runs the cache:
``Runnable.batch()`` copies the caller's context into its worker threads,
``abatch()`` / ``asyncio.gather`` tasks start with a copy of it, and the chat models'
cache calls run in the context of whoever invoked them.

The options in force live in one ``ContextVar`` holding an immutable :class:`Options`;
the cache template reads it with :func:`current_options`, one ``ContextVar.get()``.
Outside any ``control()`` that is the module constant :data:`DEFAULT`, so the
template's fast path is ``if opts is DEFAULT``. A second ``ContextVar`` records the open
blocks, so that each one restores what was in force before it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Generator
from contextvars import ContextVar
from dataclasses import dataclass, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, TypedDict, TypeVar, cast

from gencache._ttl import check_seconds

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "DEFAULT",
    "IN_USE",
    "Control",
    "ControlArgs",
    "Options",
    "control",
    "current_options",
]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Options:
    """The per-call options in force, as the caches see them. Immutable.

    Attributes:
        read: Whether a lookup may answer from the cache. ``False``: every lookup is a
            miss without touching the store (counted as a bypassed read).
        write: Whether an answer may be stored. ``False``: updates store nothing
            (counted as a skipped write).
        ttl: Seconds an entry written now stays fresh, overriding the cache's own
            ``ttl``; ``None``: the cache's ``ttl``.
        max_age: A lookup accepts only entries written less than this many seconds
            ago; older ones are misses and stay stored. ``None``: any age.
        scope: The namespace of entries read and written; entries are visible only to
            lookups in the same scope. ``None``: the unscoped namespace.
    """

    read: bool = True
    write: bool = True
    ttl: float | None = None
    max_age: float | None = None
    scope: str | None = None


DEFAULT: Final = Options()
"""The options outside any ``control()``: the caches' own behaviour."""

_OPTIONS: Final[ContextVar[Options]] = ContextVar("gencache.options", default=DEFAULT)

# The ``control()`` blocks active in this context, innermost last: each Control with the
# options in force before it. Kept in the context rather than on the Control object so
# that one Control can be active in several threads and tasks (and nested in itself) at
# once: each context unwinds only its own entries.
_ACTIVE: Final[ContextVar[tuple[tuple[Control, Options], ...]]] = ContextVar(
    "gencache.control.active", default=()
)

current_options: Final[Callable[[], Options]] = _OPTIONS.get
"""Return the :class:`Options` in force in the current context (:data:`DEFAULT` if none).

The bound ``ContextVar.get`` itself, not a wrapper around it: the cache template calls
it on every lookup and update, so it costs one C call and no Python frame.
"""

IN_USE: Final[list[bool]] = []
"""Empty until a ``control()`` block is first entered in this process, in any context.

While it is empty every context's options are :data:`DEFAULT`, so the hottest path (an
``InMemoryCache`` hit) tests it, ``current_options() if IN_USE else DEFAULT``, instead
of calling :func:`current_options`: one global read, where the call cost a hit 5 % of
LangChain's own lookup (measured by paired batches, 1.21x -> 1.15x).
"""


class ControlArgs(TypedDict, total=False):
    """The keyword arguments of :func:`control`; each one absent means "inherit"."""

    read: bool
    write: bool
    ttl: float | None
    max_age: float | None
    scope: str | None


def _check(name: str, value: Any) -> Any:
    if name in ("read", "write"):
        if not isinstance(value, bool):
            msg = f"control({name}=...) must be a bool, not {type(value).__name__} ({value!r})"
            raise TypeError(msg)
        return value
    if name in ("ttl", "max_age"):
        return None if value is None else check_seconds(f"control({name}=...)", value)
    if name == "scope":
        if value is None:
            return None
        if not isinstance(value, str):
            msg = f"control(scope=...) must be a str or None, not {type(value).__name__}"
            raise TypeError(msg)
        if not value:
            msg = "control(scope=...) must be a non-empty str or None, not ''"
            raise ValueError(msg)
        return value
    msg = f"control() got an unexpected keyword argument {name!r}"
    raise TypeError(msg)


class Control:
    """Options to apply to cache calls: a context manager and a decorator.

    Made by :func:`control`. Reusable and reentrant: the same object may be entered
    again, nested in itself, and be active in several threads and tasks at once.
    Entering costs two ``ContextVar.set()`` calls and a small tuple; it never blocks.
    """

    __slots__ = ("_last", "_overrides")

    def __init__(self, overrides: dict[str, Any]) -> None:
        """Keep already validated ``overrides``; call :func:`control` instead."""
        self._overrides: Final = dict(overrides)
        # The last (outer, inner) pair computed: building a frozen dataclass costs ~1 us,
        # and a Control is usually entered again and again under the same outer options
        # (a decorator, a block in a loop). One tuple, replaced whole, so threads that
        # race on it each read a consistent pair.
        self._last: tuple[Options | None, Options] = (None, DEFAULT)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._overrides.items())
        return f"control({args})"

    def _under(self, outer: Options) -> Options:
        """Return the options in force inside this control when ``outer`` is outside."""
        last_outer, inner = self._last
        if last_outer is outer:
            return inner
        inner = replace(outer, **self._overrides) if self._overrides else outer
        # Equal options are returned as the same object, so that ``is DEFAULT`` holds
        # for ``control(read=True)``, ``control(ttl=None)`` inside ``control(ttl=5)`` and
        # friends: the template stays on its fast path.
        if inner == outer:
            inner = outer
        elif inner == DEFAULT:
            inner = DEFAULT
        self._last = (outer, inner)
        return inner

    def __enter__(self) -> Options:
        """Apply the options until the block exits; return the options now in force."""
        if not IN_USE:
            IN_USE.append(True)
        outer = _OPTIONS.get()
        options = self._under(outer)
        _OPTIONS.set(options)
        _ACTIVE.set((*_ACTIVE.get(), (self, outer)))
        return options

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Restore the options in force before the matching ``__enter__``."""
        active = _ACTIVE.get()
        # The innermost entry is ours when blocks nest, as ``with`` blocks do; searching
        # down keeps a hand-driven ``__exit__`` out of order from undoing another's.
        for i in range(len(active) - 1, -1, -1):
            owner, outer = active[i]
            if owner is self:
                _OPTIONS.set(outer)
                _ACTIVE.set(active[:i] + active[i + 1 :])
                return
        msg = f"{self!r} exited in a context where it was not entered"
        raise RuntimeError(msg)

    def __call__(self, fn: F) -> F:
        """Decorate ``fn`` so that the options apply to the whole of each call.

        Coroutine functions get them across every ``await``. Generator and async
        generator functions stay generator functions (LangChain tells them apart by
        ``inspect``) and run in a view of their own, taken at their first step (the
        consumer's options then, with these on top) and kept across their ``yield``s:
        their own ``control()`` blocks persist across a ``yield`` and never leak into
        the consumer, and the consumer's later blocks do not reach into them. Other
        callables get the options for the duration of the call (a plain function that
        returns a coroutine is not followed into it).
        """
        if inspect.isasyncgenfunction(fn):
            return cast(F, self._wrap_async_generator(fn))
        if inspect.iscoroutinefunction(fn):
            return cast(F, self._wrap_coroutine(fn))
        if inspect.isgeneratorfunction(fn):
            return cast(F, self._wrap_generator(fn))

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            with self:
                return fn(*args, **kwargs)

        return cast(F, call)

    def _wrap_coroutine(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        async def call(*args: Any, **kwargs: Any) -> Any:
            with self:
                return await fn(*args, **kwargs)

        return call

    def _wrap_generator(self, fn: Callable[..., Generator[Any, Any, Any]]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            view = _View(self._under(_OPTIONS.get()))
            with view:
                gen = fn(*args, **kwargs)
            try:
                with view:
                    item = next(gen)
                while True:
                    try:
                        sent = yield item
                    except GeneratorExit:
                        raise
                    except BaseException as exc:  # forwarded to the generator
                        with view:
                            item = gen.throw(exc)
                    else:
                        with view:
                            item = gen.send(sent)
            except StopIteration as stop:
                return stop.value
            finally:
                with view:
                    gen.close()

        return call

    def _wrap_async_generator(
        self, fn: Callable[..., AsyncGenerator[Any, Any]]
    ) -> Callable[..., Any]:
        @functools.wraps(fn)
        async def call(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
            view = _View(self._under(_OPTIONS.get()))
            with view:
                agen = fn(*args, **kwargs)
            try:
                with view:
                    item = await agen.__anext__()
                while True:
                    try:
                        sent = yield item
                    except GeneratorExit:
                        raise
                    except BaseException as exc:  # forwarded to the generator
                        with view:
                            item = await agen.athrow(exc)
                    else:
                        with view:
                            item = await agen.asend(sent)
            except StopAsyncIteration:
                return
            finally:
                with view:
                    await agen.aclose()

        return call


class _View:
    """The options of one decorated generator, swapped in while it runs a step.

    A generator's body runs in its consumer's context, so without this a block open
    across a ``yield`` would leak into the consumer, and the consumer's blocks into it.
    Not shared: one generator runs one step at a time.
    """

    __slots__ = ("_active", "_options", "_outer")

    def __init__(self, options: Options) -> None:
        self._options = options
        self._active: tuple[tuple[Control, Options], ...] = ()
        self._outer: tuple[Options, tuple[tuple[Control, Options], ...]] = (DEFAULT, ())

    def __enter__(self) -> None:
        outer_active = _ACTIVE.get()
        self._outer = (_OPTIONS.get(), outer_active)
        if not IN_USE:  # a view's options come from a control() entered before: set already
            IN_USE.append(True)
        _OPTIONS.set(self._options)
        _ACTIVE.set(outer_active + self._active)

    def __exit__(self, *exc_info: object) -> None:
        options, active = self._outer
        # What the generator's own blocks left open is kept for its next step.
        self._options = _OPTIONS.get()
        self._active = _ACTIVE.get()[len(active) :]
        _OPTIONS.set(options)
        _ACTIVE.set(active)


def control(**options: Unpack[ControlArgs]) -> Control:
    """Return per-call cache options, to use as ``with control(...):`` or ``@control(...)``.

    Every cache call made inside (including from ``batch()`` worker threads,
    ``abatch()`` and ``asyncio.gather`` tasks started inside) sees the options. Blocks
    nest: each option the inner ``control()`` passes wins, the ones it does not pass
    are inherited from the enclosing block, so ``control(ttl=None)`` inside
    ``control(ttl=60)`` restores the cache's own ``ttl``.

    Signature: ``control(*, read=True, write=True, ttl=None, max_age=None, scope=None)``.

    Args:
        **options: Any of ``read`` (``bool``: ``False`` skips the lookup), ``write``
            (``bool``: ``False`` stores nothing), ``ttl`` (seconds entries written
            inside stay fresh), ``max_age`` (seconds: older entries are misses),
            ``scope`` (``str``: a namespace of entries; ``None``: unscoped).

    Returns:
        A reusable :class:`Control`. Its ``with`` block yields the :class:`Options`
        then in force.

    Raises:
        TypeError: If ``read`` or ``write`` is not a ``bool``, ``ttl`` or ``max_age``
            is not a number (``bool`` and ``str`` refused), ``scope`` is neither a
            ``str`` nor ``None``, or an argument is unknown or positional.
        ValueError: If ``ttl`` or ``max_age`` is not finite and greater than 0, or
            ``scope`` is ``""``.
    """
    return Control({name: _check(name, value) for name, value in options.items()})


# help(), inspect.signature() and documentation tools show the documented defaults;
# the implementation takes ``**options`` so that an absent argument means "inherit".
control.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
        for name, default in (
            ("read", True),
            ("write", True),
            ("ttl", None),
            ("max_age", None),
            ("scope", None),
        )
    ],
    return_annotation=Control,
)
