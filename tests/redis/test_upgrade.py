"""A namespace written by gencache 0.1: its keys are misses, not errors, and stay until cleared.

gencache 0.1 stored each entry at ``{namespace}:{digest}`` (a key-version-1 digest of the
prompt as LangChain passed it), as a binary value: a ``gc1\\0`` header (created and expiry
times, the lengths of prompt and llm_string), then prompt, llm_string and a codec format 1
payload. 0.2 reads ``{namespace}:{tag}:{digest}`` with key version 2: it never looks at
0.1's keys, so a lookup is a plain miss (no "undecodable" warning, no delete), and
``clear()`` removes them with the rest (docs/backends.md, "Upgrading from 0.1").
"""

from __future__ import annotations

import logging
import math
import struct
import time
import warnings

import pytest
from redis.client import Redis

from gencache import control
from tests.helpers import gens
from tests.redis.conftest import MakeCache
from tests.sqlite.test_upgrade import CHAT, PAYLOADS_0_1, L, P, digest_0_1

_HEADER_0_1 = struct.Struct(">4sddII")  # magic, created_at, expires_at (inf: never), lengths


def value_0_1(prompt: str, llm_string: str, payload: bytes) -> bytes:
    """A value as gencache 0.1's RedisCache packed it (no ttl)."""
    p, s = prompt.encode(), llm_string.encode()
    header = _HEADER_0_1.pack(b"gc1\x00", time.time(), math.inf, len(p), len(s))
    return header + p + s + payload


def _write_0_1(raw: Redis, namespace: str) -> dict[str, bytes]:
    old = {
        f"{namespace}:{digest_0_1(prompt, L)}": value_0_1(prompt, L, payload)
        for prompt, payload in PAYLOADS_0_1.items()
    }
    for key, value in old.items():
        raw.set(key, value)
    return old


def test_keys_of_0_1_are_misses_without_errors_or_warnings(
    make: MakeCache, raw: Redis, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    old = _write_0_1(raw, namespace)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        with caplog.at_level(logging.DEBUG, logger="gencache"):
            cache = make(strict=True)  # strict: an error would raise
            for _ in range(50):  # many lookups: still no log line, no warning
                assert cache.lookup(P, L) is None
                assert cache.lookup(CHAT, L) is None
            with control(scope="tenant-a"):
                assert cache.lookup(P, L) is None
            assert {k: raw.get(k) for k in old} == old  # untouched: not dropped as damaged
            stats = cache.stats()
            assert (stats.hits, stats.misses) == (0, 101)
            cache.update(P, L, gens("paris, again"))  # the first call after upgrading
            assert cache.lookup(P, L) == gens("paris, again")
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_async_lookups_of_0_1_keys_are_misses(
    make: MakeCache, raw: Redis, namespace: str
) -> None:
    old = _write_0_1(raw, namespace)
    cache = make(strict=True)
    assert await cache.alookup(P, L) is None
    assert await cache.alookup(CHAT, L) is None
    await cache.aupdate(CHAT, L, gens("Paris."))
    assert await cache.alookup(CHAT, L) == gens("Paris.")
    assert raw.exists(*old) == len(old)


def test_clear_removes_the_keys_of_0_1(make: MakeCache, raw: Redis, namespace: str) -> None:
    old = _write_0_1(raw, namespace)
    cache = make()
    cache.update(P, L, gens("new"))
    assert len(cache) == 1 + len(old)  # counted until cleared, as docs/backends.md says
    cache.clear()
    assert len(cache) == 0
    assert raw.exists(*old) == 0
