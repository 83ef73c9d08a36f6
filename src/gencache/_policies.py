"""Size bound and replacement policy: which entry leaves when the cache is full.

Pure configuration, no storage: each backend expresses the policy its own way (an
``OrderedDict`` in memory, an indexed column in SQLite).
"""

from __future__ import annotations

import enum
from typing import Any

__all__ = ["Policy", "check_maxsize"]


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
