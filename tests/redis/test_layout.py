"""What RedisCache leaves in Redis: the key layout, the stored JSON document, scopes.

Keys are ``{namespace}:{tag}:{digest}`` (tag ``_`` without a scope, 16 hex digits of the
scope's hash with one); :meth:`RedisCache.redis_key` names them. Whatever shares the
database or the namespace and is not one of those keys is never deleted.
"""

from __future__ import annotations

import json
import re
import time

from redis.client import Redis

from gencache import control
from gencache.redis import RedisCache
from tests.helpers import chat_gens, gens
from tests.redis.conftest import MakeCache

P, L = "What is the capital of France?", "model='m' temperature=0"
HEX64 = "[0-9a-f]{64}"


def test_one_string_key_per_entry_under_the_namespace(
    make: MakeCache, raw: Redis, namespace: str
) -> None:
    cache = make()
    cache.update(P, L, chat_gens("Paris"))
    key = cache.redis_key(P, L)
    assert re.fullmatch(rf"{namespace}:_:{HEX64}", key)
    assert raw.keys(f"{namespace}:*") == [key.encode()]
    assert raw.type(key) == b"string"
    assert raw.pttl(key) == -1  # no TTL: never expires


def test_redis_cli_get_shows_one_legible_json_document(make: MakeCache, raw: Redis) -> None:
    start = time.time()
    cache = make(ttl=60)
    cache.update(P, L, chat_gens("Paris"))
    value = raw.get(cache.redis_key(P, L))
    assert isinstance(value, bytes)
    document = json.loads(value)  # what an operator sees with redis-cli GET
    meta = document["meta"]
    assert (meta["prompt"], meta["llm_string"]) == (P, L)
    assert cache.redis_key(P, L).endswith(":" + meta["key"])
    assert start <= meta["created_at"] <= time.time()
    assert meta["expires_at"] == meta["created_at"] + 60
    [generation] = document["g"]
    assert generation["message"]["content"] == "Paris"
    assert generation["message"]["response_metadata"] == {"model": "m"}
    assert value.decode("utf-8")  # text, no binary header


def test_a_scope_has_keys_of_its_own(make: MakeCache, raw: Redis, namespace: str) -> None:
    cache = make()
    cache.update(P, L, gens("unscoped"))
    with control(scope="tenant-a"):
        cache.update(P, L, gens("a"))
        assert cache.lookup(P, L) == gens("a")
    scoped = cache.redis_key(P, L, scope="tenant-a")
    assert re.fullmatch(rf"{namespace}:[0-9a-f]{{16}}:{HEX64}", scoped)
    assert scoped != cache.redis_key(P, L, scope="tenant-b") != cache.redis_key(P, L)
    assert json.loads(raw.get(scoped) or b"")["meta"]["scope"] == "tenant-a"
    assert cache.lookup(P, L) == gens("unscoped")


def _fill(cache: RedisCache) -> None:
    for i in range(3):
        cache.update(f"p{i}", L, gens(f"none {i}"))
        for scope in ("tenant-a", "tenant-b"):
            with control(scope=scope):
                cache.update(f"p{i}", L, gens(f"{scope} {i}"))


def _foreign(raw: Redis, namespace: str) -> dict[str, bytes]:
    """Keys RedisCache never writes, in its database and namespace, left as they are."""
    keys = {
        "plain-key": b"x",
        f"{namespace}:not-a-digest": b"kept",
        f"{namespace}:_:{'0' * 63}": b"one hex digit short",
        f"{namespace}:_:{'0' * 64}:tail": b"longer",
        f"{namespace}:{'A' * 64}": b"upper-case hex",
        f"{namespace}:tag:{'0' * 64}": b"a tag that is not ours",
        f"{namespace}:savings-like": b"another feature's key",
        f"{namespace}2:_:{'0' * 64}": b"a namespace with our prefix",
        f"{namespace}:sub:_:{'0' * 64}": b"a nested namespace",
    }
    for key, value in keys.items():
        raw.set(key, value)
    raw.hset(f"{namespace}:_:{'1' * 64}:h", mapping={"a": "b"})
    return keys


def test_clear_of_a_scope_deletes_only_that_scopes_entries(
    make: MakeCache, raw: Redis, namespace: str
) -> None:
    cache = make()
    _fill(cache)
    foreign = _foreign(raw, namespace)
    cache.clear(scope="tenant-a")
    with control(scope="tenant-a"):
        assert [cache.lookup(f"p{i}", L) for i in range(3)] == [None] * 3
    with control(scope="tenant-b"):
        assert cache.lookup("p1", L) == gens("tenant-b 1")
    assert cache.lookup("p2", L) == gens("none 2")
    assert len(cache) == 6
    assert {k: raw.get(k) for k in foreign} == foreign
    assert raw.hgetall(f"{namespace}:_:{'1' * 64}:h") == {b"a": b"b"}


async def test_async_clear_of_a_scope(make: MakeCache, raw: Redis, namespace: str) -> None:
    cache = make()
    _fill(cache)
    foreign = _foreign(raw, namespace)
    await cache.aclear(scope="tenant-b")
    with control(scope="tenant-b"):
        assert await cache.alookup("p0", L) is None
    with control(scope="tenant-a"):
        assert await cache.alookup("p0", L) == gens("tenant-a 0")
    assert len(cache) == 6
    await cache.aclear()
    assert len(cache) == 0
    assert {k: raw.get(k) for k in foreign} == foreign


def test_clear_deletes_every_scope_and_the_keys_of_gencache_0_1(
    make: MakeCache, raw: Redis, namespace: str
) -> None:
    # gencache 0.1 wrote {namespace}:{digest}; 0.2 does not read them (a miss: the format
    # changed) and clear() removes them with the rest.
    cache = make()
    _fill(cache)
    old = [f"{namespace}:{i:064x}" for i in range(5)]
    for key in old:
        raw.set(key, b"gc1\x00 a gencache 0.1 value")
    foreign = _foreign(raw, namespace)
    assert len(cache) == 9 + 5
    cache.clear()
    assert len(cache) == 0
    assert raw.exists(*old) == 0
    assert {k: raw.get(k) for k in foreign} == foreign
    raw.delete(*foreign)


def test_clear_keeps_other_namespaces(make: MakeCache, raw: Redis, namespace: str) -> None:
    cache = make()
    longer = make(namespace=namespace + "2")  # "ns" is a prefix of "ns2"
    nested = make(namespace=namespace + ":sub")  # "ns:" is a prefix of "ns:sub:"
    for c in (cache, longer, nested):
        _fill(c)
    cache.clear()
    assert len(cache) == 0
    assert (len(longer), len(nested)) == (9, 9)
    with control(scope="tenant-a"):
        assert nested.lookup("p2", L) == gens("tenant-a 2")
        longer.clear(scope="tenant-a")
        assert nested.lookup("p2", L) == gens("tenant-a 2")
    assert (len(longer), len(nested)) == (6, 9)
