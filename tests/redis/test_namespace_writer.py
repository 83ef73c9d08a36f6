"""An attacker who can write into a RedisCache's namespace: at worst a miss.

Since 0.2 a value is one JSON document that names its own key (``meta["key"]``, the
digest at the end of :meth:`RedisCache.redis_key`); see docs/codec.md. Whoever can write
to the namespace can put any answer under any key: that is the trust a shared cache
needs. What must never happen is worse than that:

* an entry copied under another key (another prompt, llm_string or scope) answers there:
  it is a miss, and is deleted, by a compare-and-delete that never deletes a value a
  writer put there after the read;
* a copy from another namespace (same digest) answers anything but exactly its own pair;
* a crafted document (LangChain ``lc`` constructor and secret dicts as data or as
  messages, another key's name, non-UTF-8, NaN, empty, huge, nested or bracket bombs)
  makes a lookup import, call or read the environment, raise (the caches here are
  strict), or cost more time or memory than an honest entry of the same size and shape;
* a key of another Redis type raises.

tests/redis/test_redis.py covers plain garbage, gencache 0.1's header, a hash and a list,
a copy to a near pair and a delete racing a writer (a replacement of another length).
"""

from __future__ import annotations

import json
import logging
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from langchain_core.outputs import Generation
from redis import asyncio as aioredis
from redis.client import Redis

from gencache import codec, control
from gencache.codec import MAX_PAYLOAD_BYTES
from gencache.redis import RedisCache
from tests.backends.redis import shared_server
from tests.helpers import gens
from tests.unit.test_codec_fuzz import (
    OPENAI,
    OS_SYSTEM,
    SECRET,
    SECRET_VALUE,
    Tripwire,
    assert_safe_result,
    decodes_safely,
)

pytestmark = pytest.mark.fault

P, Q, L = "What is the capital of France?", "And of Italy?", "model='m' temperature=0"
MB = 1_000_000


@pytest.fixture
def raw() -> Iterator[Redis]:
    with shared_server().client() as client:
        yield client


@pytest.fixture
def namespace() -> str:
    return f"hostile-{uuid.uuid4().hex[:12]}"


def _digest(cache: RedisCache, prompt: str = P, llm_string: str = L) -> str:
    """The digest an entry of the pair names in its ``meta``: the end of its Redis key."""
    return cache.redis_key(prompt, llm_string).rsplit(":", 1)[1]


async def _lookup(cache: RedisCache, mode: str, prompt: str = P) -> list[Generation] | None:
    return await cache.alookup(prompt, L) if mode == "async" else cache.lookup(prompt, L)


# -- an entry copied under another key ----------------------------------------------------

# Where the copy of (P, L)'s entry is planted: the pair and scope that key belongs to.
ELSEWHERE: dict[str, tuple[str, str, str | None]] = {
    "another-prompt": (Q, L, None),
    "another-llm-string": (P, L + " ", None),
    "another-scope": (P, L, "tenant-b"),
}


@pytest.mark.parametrize("where", ELSEWHERE)
@pytest.mark.parametrize("mode", ["sync", "async", "near"])
async def test_an_entry_copied_under_another_key_is_a_miss_and_is_deleted(
    raw: Redis, namespace: str, mode: str, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The document names its key, which digests the pair and the scope: a copy can make
    # neither another prompt nor another tenant answer with this entry's response.
    cache = RedisCache(
        shared_server().url, namespace=namespace, strict=True, near_cache=mode == "near"
    )
    prompt, llm_string, scope = ELSEWHERE[where]
    home = "tenant-a" if scope else None  # the scope the original is written in
    try:
        with control(scope=home):
            cache.update(P, L, gens("the answer about France"))
        original = cache.redis_key(P, L, scope=home)
        copy = cache.redis_key(prompt, llm_string, scope=scope)
        assert copy != original
        value = raw.get(original)
        assert value is not None
        raw.set(copy, value)
        with caplog.at_level(logging.WARNING, logger="gencache"), control(scope=scope):
            if mode == "async":
                assert await cache.alookup(prompt, llm_string) is None
            else:
                assert cache.lookup(prompt, llm_string) is None
            assert cache.lookup(prompt, llm_string) is None  # nothing kept it, near cache neither
        assert raw.exists(copy) == 0  # dropped
        assert "names another key" in caplog.text
        with control(scope=home):
            assert cache.lookup(P, L) == gens("the answer about France")
        assert raw.get(original) == value  # the original is untouched
        assert [(e.prompt, e.llm_string, e.scope) for e in cache.entries()] == [(P, L, home)]
        stats = cache.stats()
        assert (stats.hits, stats.misses, stats.size) == (1, 2, 1)
    finally:
        cache.clear()
        cache.close()


def test_a_copy_from_another_namespace_answers_exactly_its_own_pair(
    raw: Redis, namespace: str
) -> None:
    # Namespaces separate caches, they are not a security boundary: the key digests the
    # pair (and scope) only, so an entry copied from another namespace is a hit for
    # exactly its own pair, and a miss under any other key.
    cache = RedisCache(shared_server().url, namespace=namespace, strict=True)
    elsewhere = RedisCache(shared_server().url, namespace=namespace + "-elsewhere")
    try:
        elsewhere.update(P, L, gens("from elsewhere"))
        value = raw.get(elsewhere.redis_key(P, L))
        assert value is not None
        planted = [
            cache.redis_key(P, L),
            cache.redis_key(Q, L),
            cache.redis_key(P, L, scope="tenant"),
        ]
        for key in planted:
            raw.set(key, value)
        assert cache.lookup(P, L) == gens("from elsewhere")
        assert cache.lookup(Q, L) is None
        with control(scope="tenant"):
            assert cache.lookup(P, L) is None
        assert [raw.exists(key) for key in planted] == [1, 0, 0]
        assert [(e.prompt, e.llm_string, e.scope) for e in cache.entries()] == [(P, L, None)]
        assert elsewhere.lookup(P, L) == gens("from elsewhere")
    finally:
        elsewhere.clear()
        cache.clear()
        cache.close()
        elsewhere.close()


# -- the delete never removes what a writer put there meanwhile ----------------------------

# 75 bytes: two prompts that differ only before it end their documents alike (the prompt
# is the last field of "meta", and a document ends '"},"v":2}').
SUFFIX = " into French? Answer with one word, in lower case, and without punctuation."


def _written(cache: RedisCache, raw: Redis, prompt: str, text: str, length: int = 0) -> bytes:
    """The value gencache writes for ``prompt`` answering ``text`` (of ``length`` bytes:
    ``created_at`` is written as the shortest repr, whose length varies now and then)."""
    for _ in range(100):
        cache.update(prompt, L, gens(text))
        value = raw.get(cache.redis_key(prompt, L))
        assert isinstance(value, bytes)
        if not length or len(value) == length:
            return value
    raise AssertionError(f"no value of {length} bytes for {prompt!r}")


def _race(case: str, cache: RedisCache, raw: Redis) -> tuple[str, bytes, bytes]:
    """``(prompt, bad value under its key, the value a writer puts there after the read)``."""
    if case == "copied-from-another-prompt":
        return Q, _written(cache, raw, P, "paris"), _written(cache, raw, Q, "rome")
    if case == "copied-from-a-prompt-with-the-same-ending":
        # Templated prompts, answers of one length: the copy and the writer's value have
        # the same length and the same last 64 bytes.
        cat, dog = "Translate 'cat'" + SUFFIX, "Translate 'dog'" + SUFFIX
        copied = _written(cache, raw, cat, "chat")
        return dog, copied, _written(cache, raw, dog, "loup", len(copied))
    assert case == "damaged-then-rewritten"
    # One byte of an entry damaged; meanwhile a writer stores the same answer again.
    value = _written(cache, raw, P, "paris")
    return P, value.replace(b'"t":"gen"', b'"t":"geX"', 1), value


class _RacingClient(Redis):
    """Runs ``meanwhile`` once, after a GET's reply and before the caller gets it."""

    meanwhile: Callable[[], object] | None = None

    def execute_command(self, *args: Any, **options: Any) -> Any:
        reply = super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        if args[0] == "GET" and self.meanwhile is not None:
            run, self.meanwhile = self.meanwhile, None
            run()
        return reply


class _AsyncRacingClient(aioredis.Redis):
    meanwhile: Callable[[], object] | None = None

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        reply = await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        if args[0] == "GET" and self.meanwhile is not None:
            run, self.meanwhile = self.meanwhile, None
            run()
        return reply


@pytest.mark.parametrize(
    "case",
    [
        "copied-from-another-prompt",
        "copied-from-a-prompt-with-the-same-ending",
        "damaged-then-rewritten",
    ],
)
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_the_delete_spares_a_value_a_writer_put_there_after_the_read(
    raw: Redis, namespace: str, case: str, mode: str
) -> None:
    """A bad value (copied, or damaged) is deleted only if it is still there: a value a
    writer stored between the read and the delete stays, whatever its bytes are.

    The hook of the racing client stores it right after the GET's reply. The two last
    cases give it the bad value's length and last 64 bytes (what the delete script of
    src/gencache/redis/_store.py compares): a templated prompt answered with a word of
    the same length, and an entry whose damaged copy is rewritten with the same answer.
    """
    writer = RedisCache(shared_server().url, namespace=namespace)
    port = shared_server().port
    sync_client = _RacingClient(host="127.0.0.1", port=port)
    async_client = _AsyncRacingClient(host="127.0.0.1", port=port)
    try:
        prompt, bad, replacement = _race(case, writer, raw)
        key = writer.redis_key(prompt, L)
        raw.set(key, bad)
        racing = sync_client if mode == "sync" else async_client
        racing.meanwhile = lambda: raw.set(key, replacement)
        reader = RedisCache(
            sync_client, namespace=namespace, async_client=async_client, strict=True
        )
        assert await _lookup(reader, mode, prompt) is None  # it read the bad value
        # The writer's value (not the bad one, which the hook replaced, nor nothing).
        assert raw.get(key) == replacement, "the compare-and-delete removed the new value"
        assert await _lookup(reader, mode, prompt) == codec.decode(replacement)
    finally:
        writer.clear()
        writer.close()
        sync_client.close()
        await async_client.aclose()


# -- crafted documents ----------------------------------------------------------------------


def _document(items: Any, meta: Any = None, version: int = 2) -> bytes:
    """A stored document as an attacker who read docs/codec.md would write it."""
    doc: dict[str, Any] = {"g": items, "v": version}
    if meta is not None:
        doc["meta"] = meta
    return json.dumps(doc, separators=(",", ":")).encode()


def _meta(digest: Any, **extra: Any) -> dict[str, Any]:
    """What RedisCache writes in ``meta``, naming ``digest``."""
    meta = {"prompt": P, "llm_string": L, "created_at": time.time(), "expires_at": None}
    return {"key": digest, **meta, **extra}


ATTACKER = {"t": "gen", "text": "attacker text"}
INERT = [  # LangChain serialized objects where the format allows any JSON: inert data
    {**ATTACKER, "generation_info": {"s": SECRET, "c": OS_SYSTEM}},
    {"t": "chat_gen", "message": {"t": "ai", "content": [SECRET, OPENAI]}},
]
AI_CONSTRUCTOR = {
    "lc": 1,
    "type": "constructor",
    "id": ["langchain", "schema", "messages", "AIMessage"],
    "kwargs": {"content": "attacker text"},
}
# 1 MB, 350,000 containers (under the bound of 1,000,000: parsed); 50 MB of such brackets
# cost gencache 0.1 9 s and 1.3 GB to parse.
BOMB = b"[" + b"[]," * 350_000 + b"[]]"
# 101 levels with the envelope, the generation and generation_info: one over the bound.
DEEP = {"a": json.loads("[" * 97 + "]" * 97)}


Build = Callable[[str], bytes]  # from the digest of (P, L)


def _with_info(info: str) -> Build:
    """A document naming the key, whose generation_info is the JSON text ``info``."""

    def build(digest: str) -> bytes:
        doc = _document([{**ATTACKER, "generation_info": "INFO"}], _meta(digest))
        return doc.replace(b'"INFO"', info.encode(), 1)

    return build


# name: (the value written under (P, L)'s key; what it is: "miss" (the codec refuses it),
# "foreign" (a document the codec reads, naming no key or another one: a miss too) or
# "inert" (the attacker's own answer for this key, LangChain objects kept as plain data);
# the generations of its honest twin, an entry of the same size and shape whose hit bounds
# what the value may cost, or None for one text of the value's length)
CRAFTED: dict[str, tuple[Build, str, list[Generation] | None]] = {
    "lc-openai-constructor": (lambda d: json.dumps(OPENAI).encode(), "miss", None),
    "lc-os-system-bare": (lambda d: json.dumps(OS_SYSTEM).encode(), "miss", None),
    "lc-os-system-as-generation": (lambda d: _document([OS_SYSTEM], _meta(d)), "miss", None),
    "lc-secret-as-message": (
        lambda d: _document([{"t": "chat_gen", "message": SECRET}], _meta(d)),
        "miss",
        None,
    ),
    "lc-constructor-as-message": (
        lambda d: _document([{"t": "chat_gen", "message": AI_CONSTRUCTOR}], _meta(d)),
        "miss",
        None,
    ),
    "lc-objects-as-data": (lambda d: _document(INERT, _meta(d)), "inert", None),
    "lc-objects-in-meta": (
        lambda d: _document([ATTACKER], _meta(d, prompt=SECRET, llm_string=OPENAI, x=OS_SYSTEM)),
        "inert",
        None,
    ),
    "crafted-cost": (  # what the hit's saving is computed from
        lambda d: _document([ATTACKER], _meta(d, cost={"model": "m", "in": 10**30, "s": 1e308})),
        "inert",
        None,
    ),
    "document-without-meta": (lambda d: codec.encode(gens("no meta")), "foreign", None),
    "version-1-document": (lambda d: _document(INERT, version=1), "foreign", None),
    "version-1-with-meta": (lambda d: _document([ATTACKER], _meta(d), version=1), "miss", None),
    "future-version": (lambda d: _document([ATTACKER], _meta(d), version=3), "miss", None),
    "meta-names-another-key": (
        lambda d: _document([ATTACKER], _meta(d[::-1])),  # a well-formed digest, not this one
        "foreign",
        None,
    ),
    "meta-key-in-upper-case": (lambda d: _document([ATTACKER], _meta(d.upper())), "foreign", None),
    "meta-key-as-a-list": (lambda d: _document([ATTACKER], _meta([d])), "foreign", None),
    "meta-key-missing": (lambda d: _document([ATTACKER], {"prompt": P}), "foreign", None),
    "meta-not-an-object": (lambda d: _document([ATTACKER], [d]), "miss", None),
    "truncated": (lambda d: _document([ATTACKER], _meta(d))[:-1], "miss", None),
    "not-utf8": (
        lambda d: _document([ATTACKER], _meta(d)).replace(b"attacker", b"attack\xff\xfe"),
        "miss",
        None,
    ),
    "nan": (_with_info('{"a":NaN}'), "miss", None),
    "empty-value": (lambda d: b"", "miss", None),
    "empty-generations": (lambda d: _document([], _meta(d)), "miss", None),
    "bracket-bomb-1mb": (  # under the container bound: parsed, then refused (no envelope)
        lambda d: BOMB,
        "miss",
        [Generation(text="x", generation_info={"a": [[] for _ in range(350_000)]})],
    ),
    "containers-over-the-limit": (
        _with_info(json.dumps({"a": [[] for _ in range(1_100_000)]})),
        "miss",
        None,
    ),
    "nested-too-deep": (_with_info(json.dumps(DEEP)), "miss", None),
    "bracket-bomb-too-deep": (_with_info("[" * 100_000 + "]" * 100_000), "miss", None),
    "over-16-mib": (
        lambda d: _document([{"t": "gen", "text": "x" * (MAX_PAYLOAD_BYTES + 1)}], _meta(d)),
        "miss",
        [Generation(text="x" * (MAX_PAYLOAD_BYTES - 1_000))],
    ),
}
BIG = ["bracket-bomb-1mb", "containers-over-the-limit", "bracket-bomb-too-deep", "over-16-mib"]


async def _plant_and_look_up(
    cache: RedisCache, raw: Redis, name: str, mode: str
) -> tuple[bytes, list[Generation] | None, float, float]:
    """Plant CRAFTED[name] under (P, L)'s key; return the value, the lookup's result, and
    the seconds it took and that a hit on its honest twin took (measured just before)."""
    build, _, twin = CRAFTED[name]
    value = build(_digest(cache))
    honest = twin or [Generation(text="x" * min(len(value), MAX_PAYLOAD_BYTES - 1_000))]
    cache.update(P + " (honest)", L, honest)
    start = time.perf_counter()
    assert await _lookup(cache, mode, P + " (honest)") == honest
    baseline = time.perf_counter() - start
    raw.set(cache.redis_key(P, L), value)
    start = time.perf_counter()
    with Tripwire(profile=False, imports=False):  # no env read, no module loaded
        hit = await _lookup(cache, mode)
    return value, hit, time.perf_counter() - start, baseline


@pytest.mark.parametrize("name", CRAFTED)
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_crafted_values_in_the_namespace(
    raw: Redis, namespace: str, monkeypatch: pytest.MonkeyPatch, name: str, mode: str
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET_VALUE)
    cache = RedisCache(shared_server().url, namespace=namespace, strict=True)
    try:
        assert await _lookup(cache, mode) is None  # warm: redis-py imports modules on first use
        value, hit, elapsed, baseline = await _plant_and_look_up(cache, raw, name, mode)
        # No more than a hit on an honest entry of the same size and shape costs, on this
        # machine now, with a wide margin (10x + 3 s): a loaded machine slows both.
        assert elapsed < 10 * baseline + 3, (elapsed, baseline)
        if CRAFTED[name][1] in ("miss", "foreign"):
            assert hit is None
            assert raw.exists(cache.redis_key(P, L)) == 0  # the template dropped it
        else:
            assert hit is not None
            assert_safe_result(hit)
            assert hit[0].text == "attacker text"  # what the attacker wrote, as data
            assert hit == codec.decode(value)
        assert SECRET_VALUE not in repr(hit)
        cache.stats()  # strict: what the value's meta holds never makes a later call raise
    finally:
        cache.clear()
        await cache.aclose()


@pytest.mark.parametrize("name", BIG)
def test_crafted_values_take_no_more_memory_than_an_honest_twin(
    raw: Redis, namespace: str, name: str
) -> None:
    """The peak of Python allocations (tracemalloc) during the lookup, against a hit of
    an honest entry of the same size and shape. Bounds checked before parsing make a
    refusal cost about the value itself; a bomb under the bounds costs what its twin does.
    """
    cache = RedisCache(shared_server().url, namespace=namespace, strict=True)

    def peak(call: Callable[[], object]) -> int:
        tracemalloc.start()
        try:
            call()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    try:
        build, _, twin = CRAFTED[name]
        value = build(_digest(cache))
        honest = twin or [Generation(text="x" * min(len(value), MAX_PAYLOAD_BYTES - 1_000))]
        cache.update(P + " (honest)", L, honest)
        honest_peak = peak(lambda: cache.lookup(P + " (honest)", L))
        raw.set(cache.redis_key(P, L), value)
        crafted_peak = peak(lambda: cache.lookup(P, L))
        assert raw.exists(cache.redis_key(P, L)) == 0
        print(
            f"figures: {name} ({len(value) / MB:.1f} MB): peak {crafted_peak / MB:.1f} MB,"
            f" honest twin {honest_peak / MB:.1f} MB"
        )
        assert crafted_peak < 1.5 * honest_peak + 4 * MB
    finally:
        cache.clear()
        cache.close()


@pytest.mark.parametrize("name", [n for n in CRAFTED if n not in BIG])
def test_the_crafted_values_pass_the_codec_tripwire(name: str) -> None:
    # The same bytes straight into the codec, under the full tripwire (no import, no code
    # outside the allow-list): the part of a lookup that reads what the attacker wrote.
    build, kind, _ = CRAFTED[name]
    out = decodes_safely(build("0" * 64))
    assert (out is None) == (kind == "miss")
    if kind == "inert":
        assert out is not None
        assert out[0].text == "attacker text"


# -- keys of other types --------------------------------------------------------------------

OTHER_TYPES: dict[str, Callable[[Redis, str], object]] = {
    "hash": lambda r, k: r.hset(k, mapping={"0": "a hash, as LangChain's RedisCache writes"}),
    "list": lambda r, k: r.rpush(k, "a list"),
    "set": lambda r, k: r.sadd(k, "a set"),
    "zset": lambda r, k: r.zadd(k, {"a sorted set": 1.0}),
    "stream": lambda r, k: r.xadd(k, {"a": "stream"}),
}


@pytest.mark.parametrize("kind", OTHER_TYPES)
@pytest.mark.parametrize("mode", ["sync", "async", "near"])
async def test_a_key_of_another_type_is_a_miss_and_is_deleted(
    raw: Redis, namespace: str, kind: str, mode: str
) -> None:
    cache = RedisCache(
        shared_server().url, namespace=namespace, strict=True, near_cache=mode == "near"
    )
    try:
        OTHER_TYPES[kind](raw, cache.redis_key(P, L))
        assert await _lookup(cache, mode) is None
        assert raw.exists(cache.redis_key(P, L)) == 0
        cache.update(P, L, gens("after"))
        assert await _lookup(cache, mode) == gens("after")
        assert (cache.stats().hits, cache.stats().misses) == (1, 1)
    finally:
        cache.clear()
        await cache.aclose()
