"""Size bound and replacement policy: which entry leaves when the cache is full.

:class:`Policy` is the public name of a policy (``"fifo"``, ``"lru"``); what the policy
*does* is an object. In memory it is an :class:`Order` (cachetools' shape: the cache owns
the entries and the size bound, the order only chooses the victim); in SQLite it is a set
of statements (``gencache.sqlite._schema.ORDERS``, diskcache's shape).

An order holds the cache's slots (see :mod:`gencache._index`) in the order the policy
evicts them. Its hot half is its :attr:`Order.queue`, spoken to in ``deque``'s words:
``queue.append(slot)`` adds the newest slot, ``queue.popleft()`` removes the victim,
``len(queue)`` is the size. For :class:`FifoOrder` the queue *is* a plain
``collections.deque``, so those calls are the deque's own C calls: the default cache's
update with eviction runs no Python frame of the policy. (Measured: a ``deque`` subclass
carrying the protocol methods costs ~270 more CPU instructions per eviction, because
CPython specialises method calls on exact built-in types only; a bound method kept in
an attribute costs about as much.)

Three orders exist:

* :class:`FifoOrder`: write order on a ``deque``. It cannot remove a slot from the middle
  in O(1); a cache whose entries can expire asks :meth:`Order.with_removal`.
* :class:`IndexedFifoOrder`: write order with O(1) removal (an ``OrderedDict`` keyed by
  ``id(slot)``), for caches whose entries expire.
* :class:`LruOrder`: use order, the same structure; :meth:`Order.touch` moves a slot to
  the back.

Not thread-safe: the owning cache holds its lock around every call.
"""

from __future__ import annotations

import enum
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Protocol

from gencache._index import Slot

__all__ = [
    "FifoOrder",
    "IndexedFifoOrder",
    "LruOrder",
    "Order",
    "Policy",
    "SlotQueue",
    "check_maxsize",
    "new_order",
]


class Policy(str, enum.Enum):
    """Replacement policy.

    ``FIFO`` evicts the entry written first (a re-update keeps its place, as in
    LangChain's ``InMemoryCache``). ``LRU`` evicts the entry used least recently: a hit or
    a re-update makes an entry the most recent.
    """

    FIFO = "fifo"
    LRU = "lru"

    @property
    def refresh_on_use(self) -> bool:
        """Whether a hit or a re-update moves the entry to the back of the line."""
        return self is Policy.LRU

    @classmethod
    def parse(cls, value: Any) -> Policy:
        """Return the policy named by ``value`` (a name or a ``Policy``).

        Raises:
            ValueError: If ``value`` names no policy; the message lists the valid names.
        """
        if isinstance(value, Policy):
            return value
        if isinstance(value, str):
            try:
                return cls(value.lower())
            except ValueError:
                pass
        valid = ", ".join(repr(p.value) for p in cls)
        msg = f"unknown policy {value!r}; valid policies are {valid}"
        raise ValueError(msg)


class SlotQueue(Protocol):
    """The hot half of an :class:`Order`, in ``deque``'s words. O(1) each."""

    def append(self, slot: Slot, /) -> None:
        """Add a new slot as the newest."""

    def popleft(self) -> Slot:
        """Remove and return the victim: the slot the policy evicts first."""

    def __len__(self) -> int:
        """The number of slots: the cache's size."""


class Order(Protocol):
    """The slots of a cache, in the order its policy evicts them (the victim first).

    Every live slot is in the order exactly once. All methods are O(1) except where
    noted.

    Attributes:
        policy: The public name of the policy.
        reorders: Whether :meth:`touch` changes the order. A cache may skip ``touch``
            (and serve hits without its lock) when it does not.
        removable: Whether :meth:`remove` and :meth:`take` are O(1).
    """

    policy: ClassVar[Policy]
    reorders: ClassVar[bool]
    removable: ClassVar[bool]

    @property
    def queue(self) -> SlotQueue:
        """Where the cache adds slots and takes victims (the same object every time)."""

    def touch(self, handle: int, /) -> None:
        """Note a hit on, or a re-update in place of, the slot whose ``id()`` is ``handle``.

        A handle rather than the slot, so that LRU's touch is ``OrderedDict.move_to_end``
        itself: a C call, no Python frame, on every LRU hit.
        """

    def remove(self, slot: Slot, /) -> None:
        """Remove ``slot``, which is in the order: O(1) when :attr:`removable`, else O(n)."""

    def take(self, handle: int, /) -> Slot:
        """Remove and return the slot whose ``id()`` is ``handle``: O(1) when
        :attr:`removable`, else O(n)."""

    def retain(self, keep: Callable[[Slot], bool], /) -> list[Slot]:
        """Remove every slot for which ``keep`` is false; return them. O(n)."""

    def with_removal(self) -> Order:
        """Return this order if it is :attr:`removable`, else an equal one that is. O(n)."""

    def clear(self) -> None:
        """Remove every slot."""

    def __len__(self) -> int:
        """The number of slots."""

    def __iter__(self) -> Iterator[Slot]:
        """The slots, the next victim first."""


class FifoOrder:
    """Write order on a plain ``deque``: the order of the default cache.

    ``queue.append`` (~15 ns) and ``queue.popleft`` are the deque's own. A hit or a
    re-update keeps a slot's place, so :meth:`touch` does nothing. Removal from the
    middle is O(n); caches whose entries can expire use :meth:`with_removal`.
    """

    __slots__ = ("_slots",)
    policy: ClassVar[Policy] = Policy.FIFO
    reorders: ClassVar[bool] = False
    removable: ClassVar[bool] = False

    def __init__(self) -> None:
        self._slots: deque[Slot] = deque()

    @property
    def queue(self) -> deque[Slot]:
        """The slots, oldest first: a plain ``deque``."""
        return self._slots

    def touch(self, handle: int, /) -> None:
        """Do nothing: a hit or a re-update keeps a FIFO slot's place."""

    def remove(self, slot: Slot, /) -> None:
        """Remove ``slot`` (by identity, never by equality). O(n)."""
        self.take(id(slot))

    def take(self, handle: int, /) -> Slot:
        """Remove and return the slot whose ``id()`` is ``handle``. O(n)."""
        for i, slot in enumerate(self._slots):
            if id(slot) == handle:
                del self._slots[i]
                return slot
        raise KeyError(handle)

    def retain(self, keep: Callable[[Slot], bool], /) -> list[Slot]:
        """Remove every slot for which ``keep`` is false; return them. O(n)."""
        kept: deque[Slot] = deque()
        dropped: list[Slot] = []
        for slot in self._slots:
            (kept if keep(slot) else dropped).append(slot)
        if dropped:
            self._slots.clear()
            self._slots.extend(kept)
        return dropped

    def with_removal(self) -> Order:
        """Return an :class:`IndexedFifoOrder` holding the same slots in the same order."""
        order = IndexedFifoOrder()
        for slot in self._slots:
            order.append(slot)
        return order

    def clear(self) -> None:
        """Remove every slot."""
        self._slots.clear()

    def __len__(self) -> int:
        """The number of slots."""
        return len(self._slots)

    def __iter__(self) -> Iterator[Slot]:
        """The slots, oldest first."""
        return iter(self._slots)


class _KeyedOrder(OrderedDict[int, Slot]):
    """Slots keyed by ``id(slot)`` (unique while the order keeps the slot alive).

    Its own queue: ``append`` and ``popleft`` are methods of this class.
    """

    __slots__ = ()
    policy: ClassVar[Policy]
    reorders: ClassVar[bool]
    removable: ClassVar[bool] = True

    @property
    def queue(self) -> _KeyedOrder:
        """This order itself."""
        return self

    def append(self, slot: Slot, /) -> None:
        """Add a new slot as the newest."""
        self[id(slot)] = slot

    def popleft(self) -> Slot:
        """Remove and return the oldest slot."""
        return self.popitem(last=False)[1]

    def touch(self, handle: int, /) -> None:
        """Do nothing (FIFO); :class:`LruOrder` moves the slot to the back."""

    def remove(self, slot: Slot, /) -> None:
        """Remove ``slot``. O(1)."""
        del self[id(slot)]

    #: Remove and return the slot whose ``id()`` is ``handle``. O(1).
    take = OrderedDict.pop

    def retain(self, keep: Callable[[Slot], bool], /) -> list[Slot]:
        """Remove every slot for which ``keep`` is false; return them. O(n)."""
        dropped = [slot for slot in self.values() if not keep(slot)]
        for slot in dropped:
            del self[id(slot)]
        return dropped

    def with_removal(self) -> Order:
        """Return this order: it is removable."""
        return self

    def __iter__(self) -> Iterator[Slot]:  # type: ignore[override]
        """The slots, the next victim first (not their ``id()`` keys)."""
        return iter(self.values())


class IndexedFifoOrder(_KeyedOrder):
    """Write order with O(1) removal from the middle, for caches whose entries expire.

    A hit or a re-update keeps a slot's place (:meth:`touch` does nothing).
    """

    __slots__ = ()
    policy: ClassVar[Policy] = Policy.FIFO
    reorders: ClassVar[bool] = False


class LruOrder(_KeyedOrder):
    """Use order: a hit or a re-update makes a slot the newest; the least recently used
    leaves first."""

    __slots__ = ()
    policy: ClassVar[Policy] = Policy.LRU
    reorders: ClassVar[bool] = True

    #: Make the slot whose ``id()`` is ``handle`` the newest. O(1), a C call.
    touch = OrderedDict.move_to_end


_ORDERS: dict[Policy, Callable[[], Order]] = {Policy.FIFO: FifoOrder, Policy.LRU: LruOrder}


def new_order(policy: Policy, *, removable: bool = False) -> Order:
    """Return an empty order for ``policy``; :attr:`Order.removable` if asked."""
    order = _ORDERS[policy]()
    return order.with_removal() if removable else order


def check_maxsize(maxsize: Any) -> int | None:
    """Return ``maxsize`` if it is ``None`` or a positive ``int``.

    Raises:
        TypeError: If ``maxsize`` is not an ``int`` (``bool``, ``float`` and ``str`` are
            refused, even when they look like numbers).
        ValueError: If ``maxsize <= 0`` (LangChain's message and exception type).
    """
    if maxsize is None:
        return None
    if isinstance(maxsize, bool) or not isinstance(maxsize, int):
        msg = f"maxsize must be an int or None, not {type(maxsize).__name__} ({maxsize!r})"
        raise TypeError(msg)
    if maxsize <= 0:
        msg = "maxsize must be greater than 0"
        raise ValueError(msg)
    return int(maxsize)
