"""RedisCache on a real server: namespaces, TTL, bad values, concurrency, configuration.

The key layout, the stored document and scopes are in test_layout.py; clients, URLs and
bursts in test_clients.py.
"""

from __future__ import annotations

import asyncio
import logging
import math
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.client import Redis

from gencache import codec
from gencache.redis import RedisCache
from tests.backends.redis import RedisServer
from tests.helpers import chat_gens, gens
from tests.redis.conftest import MakeCache

P, L = "What is the capital of France?", "model='m' temperature=0"


def test_caches_sharing_a_namespace_share_entries(make: MakeCache) -> None:
    writer, reader = make(), make()
    writer.update(P, L, gens("shared"))
    assert reader.lookup(P, L) == gens("shared")
    reader.clear()
    assert writer.lookup(P, L) is None


def test_clear_deletes_only_this_namespace(make: MakeCache, raw: Redis, namespace: str) -> None:
    cache = make()
    longer = make(namespace=namespace + "2")  # "ns" is a prefix of "ns2"
    nested = make(namespace=namespace + ":sub")  # "ns:" is a prefix of "ns:sub:"
    for c in (cache, longer, nested):
        for i in range(5):
            c.update(f"p{i}", L, gens(str(i)))
    raw.set("plain-key", b"x")
    raw.set(f"{namespace}:not-a-digest", b"kept")  # not a key RedisCache writes
    raw.hset(f"{namespace}-hash", mapping={"a": "b"})
    cache.clear()
    assert len(cache) == 0
    assert cache.lookup("p0", L) is None
    assert (len(longer), len(nested)) == (5, 5)
    assert longer.lookup("p0", L) == gens("0")
    assert nested.lookup("p4", L) == gens("4")
    assert raw.get("plain-key") == b"x"
    assert raw.get(f"{namespace}:not-a-digest") == b"kept"
    assert raw.hgetall(f"{namespace}-hash") == {b"a": b"b"}
    raw.delete("plain-key", f"{namespace}:not-a-digest", f"{namespace}-hash")


def test_clear_and_len_handle_more_keys_than_one_batch(make: MakeCache, raw: Redis) -> None:
    cache = make()
    with raw.pipeline(transaction=False) as pipe:
        for i in range(2_500):
            pipe.set(cache.redis_key(str(i), L), b"v")
        pipe.execute()
    assert len(cache) == 2_500
    cache.clear()
    assert len(cache) == 0
    assert raw.keys(f"{cache.namespace}:*") == []


async def test_async_clear_deletes_only_this_namespace(make: MakeCache, raw: Redis) -> None:
    cache, other = make(), make(namespace=make().namespace + "2")
    for c in (cache, other):
        await c.aupdate(P, L, gens("x"))
    raw.set("plain-key", b"x")
    await cache.aclear()
    assert await cache.alookup(P, L) is None
    assert await other.alookup(P, L) == gens("x")
    assert raw.get("plain-key") == b"x"
    raw.delete("plain-key")


def test_ttl_is_set_with_the_value_and_expires(make: MakeCache, raw: Redis) -> None:
    cache = make(ttl=0.2)
    cache.update(P, L, gens("short-lived"))
    assert 0 < raw.pttl(cache.redis_key(P, L)) <= 200
    assert cache.lookup(P, L) == gens("short-lived")
    deadline = time.monotonic() + 2
    while cache.lookup(P, L) is not None or len(cache):  # Redis's PX ends within 1 ms
        assert time.monotonic() < deadline, "the entry outlived its TTL"
        time.sleep(0.02)


def test_entries_give_prompt_llm_string_payload_and_times(make: MakeCache) -> None:
    start = time.time()
    cache, forever = make(ttl=60), make(namespace=make().namespace + "-forever")
    cache.update(P, L, chat_gens("Paris"))
    cache.update("\ud800 surrogate", "é", gens("odd"))
    forever.update(P, L, gens("x"))
    entries = {(e.prompt, e.llm_string): e for e in cache.entries()}
    assert set(entries) == {(P, L), ("\ud800 surrogate", "é")}
    entry = entries[P, L]
    assert cache.redis_key(P, L).endswith(":" + entry.key)
    assert codec.decode(entry.payload) == chat_gens("Paris")
    assert start <= entry.created_at <= time.time()
    assert entry.expires_at is not None
    assert math.isclose(entry.expires_at, entry.created_at + 60)
    assert [e.expires_at for e in forever.entries()] == [None]


@pytest.mark.parametrize(
    "value",
    [
        b"garbage",
        b"\xff\xfe not UTF-8",
        b'{"g":[{"t":"gen","text":"x"}],"meta":{"key":"',  # cut short
        b'{"g":[{"t":"gen","text":"x"}],"v":99}',  # a future format version
        b"gc1\x00" + b"\x00" * 24 + b'{"g":[{"t":"gen","text":"x"}],"v":1}',  # gencache 0.1
    ],
    ids=["garbage", "not-utf8", "truncated", "unknown-version", "0.1-header"],
)
def test_an_undecodable_value_is_a_miss_deleted_and_logged(
    make: MakeCache, raw: Redis, caplog: pytest.LogCaptureFixture, value: bytes
) -> None:
    cache = make()
    key = cache.redis_key(P, L)
    raw.set(key, value)
    with caplog.at_level(logging.WARNING, logger="gencache"):
        assert cache.lookup(P, L) is None
    assert raw.exists(key) == 0
    assert "dropping undecodable" in caplog.text
    assert cache.stats().misses == 1
    cache.update(P, L, gens("repaired"))
    assert cache.lookup(P, L) == gens("repaired")


async def test_an_undecodable_value_is_dropped_by_the_async_path(
    make: MakeCache, raw: Redis
) -> None:
    cache = make()
    key = cache.redis_key(P, L)
    raw.set(key, b"garbage")
    assert await cache.alookup(P, L) is None
    assert raw.exists(key) == 0


def test_a_key_of_another_type_is_a_miss_and_is_deleted(make: MakeCache, raw: Redis) -> None:
    cache = make(strict=True)
    key = cache.redis_key(P, L)
    raw.hset(key, mapping={"0": "a hash, as LangChain's RedisCache writes"})
    assert cache.lookup(P, L) is None
    assert raw.exists(key) == 0


async def test_a_key_of_another_type_is_dropped_by_the_async_path(
    make: MakeCache, raw: Redis
) -> None:
    cache = make(strict=True)
    key = cache.redis_key(P, L)
    raw.rpush(key, "a list")
    assert await cache.alookup(P, L) is None
    assert raw.exists(key) == 0


@pytest.mark.parametrize(
    ("stored", "asked"),
    [
        (("ab", "c"), ("a", "bc")),  # the same bytes, split elsewhere
        (("ab", "c"), ("a", "c")),  # a prefix of the prompt
        ((P, L + " "), (P, L)),  # a prefix of the llm_string
        ((P + "\ud800", L), (P + "\udc00", L)),  # lone surrogates
        (("é", L), ("e\u0301", L)),  # canonically equal, different code points
    ],
    ids=["split", "prompt-prefix", "llm_string-prefix", "surrogate", "normalization"],
)
def test_an_entry_copied_to_a_near_pair_is_a_miss(
    make: MakeCache, raw: Redis, stored: tuple[str, str], asked: tuple[str, str]
) -> None:
    # The stored document names its own key: copied under another key (by hand, or by a
    # tool that renames keys), it is refused there and deleted, and stays a hit where it
    # was written.
    cache = make(canonical_keys=False)  # the "normalization" pair must be two keys
    cache.update(*stored, gens("stored"))
    value = raw.get(cache.redis_key(*stored))
    assert value is not None
    copy = cache.redis_key(*asked)
    assert copy != cache.redis_key(*stored)
    raw.set(copy, value)
    assert cache.lookup(*asked) is None
    assert raw.exists(copy) == 0  # dropped
    assert cache.lookup(*stored) == gens("stored")
    assert raw.get(cache.redis_key(*stored)) == value
    cache.update(*asked, gens("asked"))
    assert cache.lookup(*asked) == gens("asked")
    assert cache.stats().misses == 1


class _RacingClient(Redis):
    """A client whose GET of a bad value lets another writer in before it returns."""

    writer: RedisCache | None = None

    def execute_command(self, *args: Any, **options: Any) -> Any:
        reply = super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        if args[0] == "GET" and reply == b"garbage" and self.writer is not None:
            self.writer.update(P, L, gens("concurrent write"))
        return reply


class _AsyncRacingClient(aioredis.Redis):
    writer: RedisCache | None = None

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        reply = await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        if args[0] == "GET" and reply == b"garbage" and self.writer is not None:
            await self.writer.aupdate(P, L, gens("concurrent write"))
        return reply


def test_the_bad_value_is_not_deleted_if_a_writer_replaced_it(
    make: MakeCache, server: RedisServer, raw: Redis
) -> None:
    # The compare-and-delete keeps a value written between the GET and the delete.
    cache = make()
    raw.set(cache.redis_key(P, L), b"garbage")
    client = _RacingClient(host="127.0.0.1", port=server.port)
    client.writer = cache
    try:
        racing = RedisCache(client, namespace=cache.namespace, strict=True)
        assert racing.lookup(P, L) is None
        assert cache.lookup(P, L) == gens("concurrent write")
        assert racing.lookup(P, L) == gens("concurrent write")
    finally:
        client.close()


async def test_the_async_delete_also_spares_a_replaced_value(
    make: MakeCache, server: RedisServer, raw: Redis
) -> None:
    cache = make()
    raw.set(cache.redis_key(P, L), b"garbage")
    sync_client, async_client = server.client(), _AsyncRacingClient(port=server.port)
    async_client.writer = cache
    try:
        racing = RedisCache(
            sync_client, namespace=cache.namespace, async_client=async_client, strict=True
        )
        assert await racing.alookup(P, L) is None
        assert await cache.alookup(P, L) == gens("concurrent write")
    finally:
        sync_client.close()
        await async_client.aclose()


async def test_500_concurrent_tasks(make: MakeCache) -> None:
    cache = make()
    keys = [f"prompt {i % 100}" for i in range(500)]

    async def task(key: str) -> None:
        if await cache.alookup(key, L) is None:
            await cache.aupdate(key, L, gens(key))
        assert await cache.alookup(key, L) == gens(key)

    await asyncio.gather(*(task(k) for k in keys))
    assert len(cache) == 100
    assert cache.stats().lookups == 1_000


def test_8_threads_mixed_operations(make: MakeCache) -> None:
    cache = make()
    keys = [f"prompt {i}" for i in range(50)]

    def work(seed: int) -> int:
        lookups = 0
        for i in range(300):
            key = keys[(seed * 7 + i) % len(keys)]
            if i % 97 == 96:
                cache.clear()
            elif i % 3:
                hit = cache.lookup(key, L)
                lookups += 1
                assert hit is None or hit == gens(key)
            else:
                cache.update(key, L, gens(key))
        return lookups

    with ThreadPoolExecutor(8) as pool:
        lookups = sum(pool.map(work, range(8)))
    stats = cache.stats()
    assert stats.hits + stats.misses == lookups
    assert stats.hits > 0


def test_sync_and_async_share_entries(make: MakeCache) -> None:
    cache = make()
    cache.update(P, L, gens("from sync"))

    async def main(expected: str, new: str) -> None:
        assert await cache.alookup(P, L) == gens(expected)
        await cache.aupdate(P, L, gens(new))

    asyncio.run(main("from sync", "from loop 1"))
    asyncio.run(main("from loop 1", "from loop 2"))  # a new loop gets its own connections
    assert cache.lookup(P, L) == gens("from loop 2")


async def test_given_clients_are_used(server: RedisServer, namespace: str) -> None:
    sync_client = server.client()
    async_client = aioredis.Redis.from_url(server.url)
    try:
        cache = RedisCache(sync_client, namespace=namespace, async_client=async_client)
        await cache.aupdate(P, L, gens("native async"))
        assert cache.lookup(P, L) == gens("native async")
        only_sync = RedisCache(sync_client, namespace=namespace)  # async through a thread
        assert await only_sync.alookup(P, L) == gens("native async")
        await only_sync.aupdate(P, L, gens("threaded"))
        assert await cache.alookup(P, L) == gens("threaded")
        await only_sync.aclear()
        assert len(cache) == 0
        assert "password" not in repr(cache)
    finally:
        sync_client.close()
        await async_client.aclose()


def test_import_gencache_does_not_import_redis() -> None:
    code = (
        "import sys, gencache\n"
        "assert 'redis' not in sys.modules, 'gencache imported redis'\n"
        "assert 'gencache.redis' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"namespace": ""}, ValueError, "namespace must be non-empty"),
        ({"namespace": "a*"}, ValueError, "glob"),
        ({"namespace": "a?b"}, ValueError, "glob"),
        ({"namespace": "[x]"}, ValueError, "glob"),
        ({"namespace": "a\\b"}, ValueError, "glob"),
        ({"namespace": 3}, TypeError, "namespace must be a str"),
        ({"near_cache": 0}, ValueError, "near_cache"),
        ({"near_cache": -5}, ValueError, "near_cache"),
        ({"near_cache": "yes"}, TypeError, "near_cache"),
        ({"socket_timeout": 0}, ValueError, "socket_timeout"),
        ({"socket_timeout": "1"}, TypeError, "socket_timeout"),
        ({"ttl": 0}, ValueError, "ttl must be"),
        ({"strict": "no"}, TypeError, "strict"),
        ({"async_client": "redis://x"}, TypeError, "async_client"),
    ],
)
def test_invalid_configuration_is_refused(
    server: RedisServer, options: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        RedisCache(server.url, **options)


def test_invalid_url_or_client_is_refused() -> None:
    with pytest.raises(TypeError, match="url_or_client"):
        RedisCache(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a Redis URL") as info:
        RedisCache("http://:hunter2@localhost/0")
    assert "hunter2" not in str(info.value)
    with pytest.raises(ValueError, match="invalid Redis URL"):
        RedisCache("redis://localhost:notaport/0")


def test_a_password_never_shows(caplog: pytest.LogCaptureFixture) -> None:
    password = "s3cr3t-Pa55word"
    server = RedisServer(password=password).start()
    try:
        cache = RedisCache(server.url, namespace="pw")
        cache.update(P, L, gens("behind a password"))
        assert cache.lookup(P, L) == gens("behind a password")
        assert password not in repr(cache)
        assert "***" in repr(cache)
        wrong = RedisCache(server.url.replace(password, "wrong-password"), strict=True)
        with pytest.raises(Exception, match="failed") as info:
            wrong.lookup(P, L)
        assert "wrong-password" not in str(info.value)
        server.kill()
        with caplog.at_level(logging.WARNING):
            assert cache.lookup(P, L) is None
        strict = RedisCache(server.url, strict=True)
        with pytest.raises(Exception, match="failed") as info:
            strict.update(P, L, gens("x"))
        in_query = RedisCache(f"redis://127.0.0.1:{server.port}/0?password={password}")
        for text in (str(info.value), caplog.text, repr(in_query)):
            assert password not in text
        assert "gencache: lookup failed" in caplog.text
    finally:
        server.stop()


def test_a_tls_url_works(tmp_path: Any) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-nodes", "-days", "1", "-subj", "/CN=localhost"),
            *("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-keyout", str(key), "-out", str(cert)),
            *("-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    server = RedisServer(tls=(cert, key), password="tls-pass").start()
    try:
        assert server.url.startswith("rediss://")
        cache = RedisCache(server.url, namespace="tls")
        cache.update(P, L, gens("over TLS"))
        assert cache.lookup(P, L) == gens("over TLS")

        async def main() -> None:
            assert await cache.alookup(P, L) == gens("over TLS")

        asyncio.run(main())
        assert "tls-pass" not in repr(cache)
    finally:
        server.stop()


def test_repr_names_the_configuration(make: MakeCache) -> None:
    cache = make(ttl=5, near_cache=10)
    text = repr(cache)
    assert text.startswith("RedisCache('redis://127.0.0.1:")
    assert f"namespace='{cache.namespace}'" in text
    assert "ttl=5.0" in text
    assert "near_cache=10" in text


def test_close_is_idempotent_and_the_cache_reconnects(make: MakeCache) -> None:
    cache = make()
    cache.update(P, L, gens("x"))
    cache.close()
    cache.close()
    assert cache.lookup(P, L) == gens("x")


async def test_aclose_closes_this_loops_connections(make: MakeCache) -> None:
    cache = make(near_cache=True)
    await cache.aupdate(P, L, gens("x"))
    await cache.aclose()
    await cache.aclose()
    assert await cache.alookup(P, L) == gens("x")
    await cache.aclose()


def test_a_thread_sees_its_own_writes(make: MakeCache) -> None:
    cache = make()
    barrier = threading.Barrier(4)

    def work(t: int) -> None:
        barrier.wait()
        for i in range(50):
            cache.update(f"t{t} k{i}", L, gens(f"{t}/{i}"))
            assert cache.lookup(f"t{t} k{i}", L) == gens(f"{t}/{i}")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(work, range(4)))
    assert len(cache) == 200


def test_langchains_constructor_spelling_works(server: RedisServer, namespace: str) -> None:
    client = server.client()
    try:
        cache = RedisCache(redis_=client, ttl=60, namespace=namespace)  # as LangChain's
        cache.update(P, L, gens("drop-in"))
        assert cache.lookup(P, L) == gens("drop-in")
        cache.clear()
        with pytest.raises(TypeError, match="not both"):
            RedisCache(server.url, redis_=client)
        with pytest.raises(TypeError, match="url_or_client"):
            RedisCache()
    finally:
        client.close()
