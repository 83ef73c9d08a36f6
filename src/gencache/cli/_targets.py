"""Opening what a command names: a SQLite file or a Redis URL."""

from __future__ import annotations

import re
from pathlib import Path

from gencache._store import StoreCache

__all__ = ["CLIError", "is_redis", "open_target"]

_REDIS_SCHEMES = ("redis", "rediss", "unix")
_HOST_PORT = re.compile(r"[\w.-]+:\d{1,5}(?:/\d+)?")


class CLIError(Exception):
    """An error to report in one line, with exit status 1."""


def is_redis(target: str) -> bool:
    """Whether ``target`` is a Redis URL (the scheme is case-insensitive).

    Raises:
        CLIError: For a URL of another scheme, or a bare ``host:port``.
    """
    scheme, sep, rest = target.partition("://")
    if sep:
        if scheme.lower() in _REDIS_SCHEMES:
            return True
        hint = rest.rpartition("@")[2]
        msg = f"not a Redis URL: {scheme}://{hint}; did you mean redis://{hint}?"
        raise CLIError(msg)
    if _HOST_PORT.fullmatch(target) and not Path(target).exists():
        msg = f"not a Redis URL: {target}; did you mean redis://{target}?"
        raise CLIError(msg)
    return False


def open_target(
    target: str, namespace: str, *, create: bool = False, write: bool = False
) -> StoreCache:
    """Open the cache at ``target`` in strict mode.

    A SQLite file is opened read-only unless ``write`` (inspection needs no write access
    to the file or its directory) and must exist unless ``create``.
    """
    if is_redis(target):
        from gencache.redis import RedisCache

        cache = RedisCache(target, namespace=namespace, strict=True)
        # Reach the server now (one GET; strict raises), so that a bad URL or password
        # fails with a clear message before any output. len() would SCAN everything.
        cache.lookup("", "")
        return cache
    from gencache.sqlite import SQLiteCache

    path = Path(target).expanduser()
    if not create and not path.exists():
        msg = f"no such cache file: {path}"
        raise CLIError(msg)
    # Refuses directories, foreign and unreadable files itself, with a clear message.
    return SQLiteCache(path, strict=True, readonly=not (write or create))
