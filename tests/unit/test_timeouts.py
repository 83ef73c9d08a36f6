"""Seconds arguments of the persistent backends get the same checks as ``ttl``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gencache import RedisCache, SQLiteCache


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (-1, ValueError),
        (float("nan"), ValueError),
        (float("inf"), ValueError),
        ("3", TypeError),
        (True, TypeError),
    ],
)
def test_busy_timeout(tmp_path: Path, bad: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="busy_timeout must be"):
        SQLiteCache(tmp_path / "c.sqlite3", busy_timeout=bad)
    SQLiteCache(tmp_path / "c.sqlite3", busy_timeout=0).close()  # zero: never wait


@pytest.mark.parametrize(
    ("bad", "error"),
    [(0, ValueError), (-1, ValueError), (float("nan"), ValueError), ("1", TypeError)],
)
def test_socket_timeout(bad: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="socket_timeout must be"):
        RedisCache("redis://127.0.0.1:6379/0", socket_timeout=bad)
