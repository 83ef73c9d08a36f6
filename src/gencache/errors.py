"""The library's own exceptions: backend failures never leak a driver's exception type."""

from __future__ import annotations

__all__ = ["BackendError", "BackendUnavailableError", "GenCacheError"]


class GenCacheError(Exception):
    """Base class of every exception gencache raises on its own behalf."""


class BackendError(GenCacheError):
    """The storage backend failed (SQLite or Redis error, timeout, corrupt file).

    The driver's exception is chained as ``__cause__``.
    """


class BackendUnavailableError(BackendError):
    """The backend cannot be reached at all (server down, file unreadable)."""
