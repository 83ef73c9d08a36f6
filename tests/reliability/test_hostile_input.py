"""Hostile and bad input: a writer in the shared Redis namespace, odd arguments, secrets.

* An attacker who can write into the namespace (tests/redis/test_redis.py already covers
  plain garbage, a truncated header and a key of another type): an entry copied under
  another key, LangChain serialized objects behind a valid header, huge length fields,
  a bracket bomb. At most a miss, or the attacker's own text as inert data, results.
* Bad arguments on every backend (tests/contract/test_contract.py covers ``None``,
  ``bytes``, ``int`` and ``list`` key parts and some bad ``return_val``): more types, the
  async twins, 10 MB prompts, 10,000 generations, NUL and lone surrogates in the
  llm_string and the text. Every backend caches them correctly or raises the same
  ``TypeError`` with the same message.
* A Redis password, in each URL spelling, never in logs (any logger), reprs or the
  exceptions callers get, including every chained ``__cause__``/``__context__`` and the
  formatted traceback: with a wrong password, and during an outage.
* Owner-only files: the SQLite database, WAL and SHM (tests/sqlite/test_files.py) and a
  new CLI export (tests/cli/test_sqlite_commands.py) are covered there; here, a Redis export.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import stat
import struct
import time
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, Generation
from redis.client import Redis

from gencache import codec
from gencache._keys import digest
from gencache.errors import BackendError
from gencache.redis import RedisCache
from gencache.sqlite import SQLiteCache
from tests.backends.redis import RedisServer, shared_server
from tests.cli.test_sqlite_commands import gencache
from tests.conftest import Factory
from tests.helpers import gens
from tests.reliability.test_codec_fuzz import (
    OPENAI,
    OS_SYSTEM,
    SECRET,
    SECRET_VALUE,
    Tripwire,
    assert_safe_result,
    decodes_safely,
)

P, L = "What is the capital of France?", "model='m' temperature=0"

# -- an attacker who can write into the namespace ----------------------------------------

_HEADER = struct.Struct(">4sddII")  # the layout documented in gencache/redis.py


def _value(
    prompt: str,
    llm_string: str,
    payload: bytes,
    *,
    lengths: tuple[int, int] | None = None,
    prompt_bytes: bytes | None = None,
) -> bytes:
    """A value in RedisCache's layout, as an attacker who read the source would write it."""
    p = prompt.encode("utf-8", "surrogatepass") if prompt_bytes is None else prompt_bytes
    s = llm_string.encode("utf-8", "surrogatepass")
    lp, ls = lengths or (len(p), len(s))
    return _HEADER.pack(b"gc1\x00", time.time(), math.inf, lp, ls) + p + s + payload


@pytest.fixture
def raw() -> Iterator[Redis]:
    with shared_server().client() as client:
        yield client


@pytest.fixture
def namespace() -> str:
    return f"hostile-{uuid.uuid4().hex[:12]}"


def _key(namespace: str, prompt: str = P, llm_string: str = L) -> str:
    return f"{namespace}:{digest(prompt, llm_string)}"


@pytest.mark.parametrize("mode", ["sync", "async", "near"])
def test_an_entry_copied_under_another_key_is_a_miss(
    raw: Redis, namespace: str, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The value embeds its prompt and llm_string; a lookup checks them against its own
    # pair, so an attacker cannot make one prompt answer with another prompt's response.
    cache = RedisCache(shared_server().url, namespace=namespace, near_cache=mode == "near")
    try:
        cache.update(P, L, gens("the answer about France"))
        other = ("What is the capital of Spain?", L)
        raw.set(_key(namespace, *other), raw.get(_key(namespace)) or b"")
        with caplog.at_level(logging.WARNING, logger="gencache"):
            if mode == "async":
                assert asyncio.run(cache.alookup(*other)) is None
            else:
                assert cache.lookup(*other) is None
        assert raw.exists(_key(namespace, *other)) == 0  # dropped, compare-and-delete
        assert "holds another prompt's response" in caplog.text
        assert cache.lookup(P, L) == gens("the answer about France")
        assert [(e.prompt, e.llm_string) for e in cache.entries()] == [(P, L)]
        stats = cache.stats()
        assert (stats.hits, stats.misses, stats.size) == (1, 1, 1)
    finally:
        cache.clear()
        cache.close()


def test_a_copy_from_another_namespace_is_the_same_pairs_answer(raw: Redis, namespace: str) -> None:
    # Namespaces separate caches, they are not a security boundary: the key digests the
    # pair only, so an entry copied from another namespace answers exactly its own pair.
    cache = RedisCache(shared_server().url, namespace=namespace)
    elsewhere = RedisCache(shared_server().url, namespace=namespace + "-elsewhere")
    try:
        elsewhere.update(P, L, gens("from elsewhere"))
        raw.set(_key(namespace), raw.get(_key(namespace + "-elsewhere")) or b"")
        assert cache.lookup(P, L) == gens("from elsewhere")
    finally:
        elsewhere.clear()
        cache.clear()


def _envelope(*items: Any) -> bytes:
    return json.dumps({"v": 1, "g": list(items)}).encode()


INERT = _envelope(
    {"t": "gen", "text": "attacker text", "generation_info": {"s": SECRET, "c": OS_SYSTEM}},
    {"t": "chat_gen", "message": {"t": "ai", "content": [SECRET, OPENAI]}},
)
BOMB = b"[" + b"[]," * 700_000 + b"[]]"  # 2 MB; 50 MB of it cost 9 s and 1.3 GB to parse
CRAFTED: dict[str, tuple[bytes, str]] = {
    # name: (value written under the (P, L) key, "miss" or "inert")
    "lc-openai-constructor": (_value(P, L, json.dumps(OPENAI).encode()), "miss"),
    "lc-os-system-as-item": (_value(P, L, _envelope(OS_SYSTEM)), "miss"),
    "lc-secret-as-message": (
        _value(P, L, _envelope({"t": "chat_gen", "message": SECRET})),
        "miss",
    ),
    "lc-objects-as-data": (_value(P, L, INERT), "inert"),
    "lc-constructor-without-header": (json.dumps(OS_SYSTEM).encode(), "miss"),
    "valid-payload-without-header": (codec.encode(gens("no header")), "miss"),
    "payload-copied-without-its-header": (INERT, "miss"),
    "huge-length-field": (_value(P, L, INERT, lengths=(2**32 - 1, 2**32 - 1)), "miss"),
    "lengths-one-past-the-end": (
        _value(P, L, b"", lengths=(len(P), len(L.encode()) + 1)),
        "miss",
    ),
    "prompt-not-utf8": (_value(P, L, INERT, prompt_bytes=b"\xff" * len(P)), "miss"),
    "header-only": (_value(P, L, b""), "miss"),
    "bracket-bomb-2mb": (BOMB, "miss"),
}


@pytest.mark.parametrize(("value", "expected"), CRAFTED.values(), ids=CRAFTED.keys())
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_crafted_values_in_the_namespace(
    raw: Redis,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
    value: bytes,
    expected: str,
    mode: str,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET_VALUE)
    cache = RedisCache(shared_server().url, namespace=namespace, strict=True)

    async def lookup() -> list[Generation] | None:
        return cache.lookup(P, L) if mode == "sync" else await cache.alookup(P, L)

    try:
        assert await lookup() is None  # warm: redis-py imports modules on first use
        raw.set(_key(namespace), value)
        start = time.perf_counter()
        with Tripwire(profile=False, imports=False):  # no env read, no module loaded
            hit = await lookup()
        elapsed = time.perf_counter() - start
        assert elapsed < 5, elapsed  # the 2 MB bomb: 0.02 s (never parsed: no header)
        if expected == "miss":
            assert hit is None
            assert raw.exists(_key(namespace)) == 0  # the template dropped it
        else:
            assert hit is not None
            assert_safe_result(hit)
            assert hit[0].text == "attacker text"  # what the attacker wrote, as data
            assert hit == codec.decode(INERT)
        assert SECRET_VALUE not in repr(hit)
    finally:
        cache.clear()
        await cache.aclose()


@pytest.mark.parametrize("payload", [json.dumps(OPENAI).encode(), _envelope(OS_SYSTEM), INERT])
def test_the_crafted_payloads_pass_the_codec_tripwire(payload: bytes) -> None:
    # The same bytes straight into the codec, under the full tripwire (no import, no code
    # outside the allow-list): the part of a lookup that reads what the attacker wrote.
    out = decodes_safely(payload)
    assert (out is None) == (payload is not INERT)


# -- bad arguments, on every backend ------------------------------------------------------

NOT_STR = {
    "bytearray": bytearray(b"p"),
    "memoryview": memoryview(b"p"),
    "float-nan": math.nan,
    "generation": Generation(text="p"),
    "dict": {"prompt": "p"},
    "tuple": ("p",),
}


@pytest.mark.parametrize("bad", NOT_STR.values(), ids=NOT_STR.keys())
@pytest.mark.parametrize("position", ["prompt", "llm_string"])
async def test_non_string_key_parts_raise_the_same_type_error(
    make_cache: Factory, bad: Any, position: str
) -> None:
    cache = make_cache()
    prompt, llm_string = (bad, L) if position == "prompt" else (P, bad)
    message = f"{position} must be a str, not {type(bad).__name__}"
    with pytest.raises(TypeError) as info:
        cache.lookup(prompt, llm_string)
    assert str(info.value) == message
    with pytest.raises(TypeError) as info:
        cache.update(prompt, llm_string, gens("x"))
    assert str(info.value) == message
    with pytest.raises(TypeError) as info:
        await cache.alookup(prompt, llm_string)
    assert str(info.value) == message
    with pytest.raises(TypeError) as info:
        await cache.aupdate(prompt, llm_string, gens("x"))
    assert str(info.value) == message
    stats = cache.stats()
    assert (stats.lookups, stats.updates, stats.size) == (0, 0, 0)


def _generator() -> Iterator[Generation]:
    yield Generation(text="x")


NOT_GENERATIONS: dict[str, tuple[Any, str]] = {
    # name: (return_val, the exact TypeError message every backend gives)
    "dict": (
        {"g": Generation(text="x")},
        "return_val must be a sequence of langchain_core.outputs.Generation, not dict",
    ),
    "set": (set(), "return_val must be a sequence of langchain_core.outputs.Generation, not set"),
    "frozenset": (
        frozenset(),
        "return_val must be a sequence of langchain_core.outputs.Generation, not frozenset",
    ),
    "generator": (
        _generator(),
        "return_val must be a sequence of langchain_core.outputs.Generation, not generator",
    ),
    "bytearray": (
        bytearray(b"ab"),
        "return_val must contain only langchain_core.outputs.Generation objects, found int",
    ),
    "range": (
        range(2),
        "return_val must contain only langchain_core.outputs.Generation objects, found int",
    ),
    "nested-list": (
        [gens("x")],
        "return_val must contain only langchain_core.outputs.Generation objects, found list",
    ),
    "messages": (
        [AIMessage(content="x")],
        "return_val must contain only langchain_core.outputs.Generation objects, found AIMessage",
    ),
    "none-inside": (
        [Generation(text="x"), None],
        "return_val must contain only langchain_core.outputs.Generation objects, found NoneType",
    ),
}


@pytest.mark.parametrize(("bad", "message"), NOT_GENERATIONS.values(), ids=NOT_GENERATIONS.keys())
async def test_return_val_not_a_sequence_of_generations(
    make_cache: Factory, bad: Any, message: str
) -> None:
    cache = make_cache()
    with pytest.raises(TypeError) as info:
        cache.update(P, L, bad)
    assert str(info.value) == message
    with pytest.raises(TypeError) as info:
        await cache.aupdate(P, L, bad)
    assert str(info.value) == message
    assert cache.lookup(P, L) is None
    assert cache.stats().updates == 0


def test_values_the_codec_refuses_are_a_documented_divergence(make_cache: Factory) -> None:
    # The one disagreement found: InMemoryCache stores objects, as LangChain's class does,
    # so it keeps generation_info values that are not JSON (a datetime, NaN, a tuple);
    # SQLite and Redis must serialize and refuse them with a TypeError.
    cache = make_cache()
    value = [Generation(text="x", generation_info={"when": (2024, 1, 1)})]
    if type(cache).__name__ == "InMemoryCache":
        cache.update(P, L, value)
        assert cache.lookup(P, L) == value
    else:
        with pytest.raises(TypeError, match=r"cannot be stored by \w+Cache: value of type tuple"):
            cache.update(P, L, value)


def test_ten_megabyte_prompt_llm_string_and_text(make_cache: Factory) -> None:
    cache = make_cache()
    big = "é" * 5_000_000  # 10 MB in UTF-8
    value = [Generation(text=big), ChatGeneration(message=AIMessage(content=big))]
    start = time.perf_counter()
    cache.update(big, big, value)
    assert cache.lookup(big, big) == value
    assert cache.lookup(big[:-1] + "e", big) is None
    assert cache.lookup(big, big + "\x00") is None
    assert time.perf_counter() - start < 10  # measured: 0.02 s memory, 0.4 s SQLite/Redis


async def test_ten_thousand_generations(make_cache: Factory) -> None:
    cache = make_cache()
    value: list[Generation] = [
        Generation(text=f"g{i}", generation_info={"i": i}) if i % 2 else chat(f"c{i}")
        for i in range(10_000)
    ]
    await cache.aupdate(P, L, value)
    hit = await cache.alookup(P, L)
    assert hit == value
    assert [type(g) for g in hit] == [type(g) for g in value]


def chat(text: str) -> ChatGeneration:
    return ChatGeneration(message=AIMessage(content=text))


ODD = ["\x00", "a\x00b", "\ud800", "\udfff\x00", "\ude00\ud83d", "😀", "\ufffd", "?", ""]
SPLIT_PAIR = "\ud83d\ude00"  # two code points, a high then a low surrogate: not "😀"


def test_nul_and_lone_surrogates_in_keys_and_text(make_cache: Factory) -> None:
    # "\ufffd" or "?" (what a lossy encoder would make of "\ud800") are other keys, and so
    # is the split pair, which is not the emoji its two halves would join into.
    cache = make_cache()
    for i, odd in enumerate(ODD):
        cache.update(P, odd, [Generation(text=odd + str(i)), chat(odd)])
        cache.update(odd + SPLIT_PAIR, odd, [Generation(text=str(i), generation_info={odd: [odd]})])
    for i, odd in enumerate(ODD):
        assert cache.lookup(P, odd) == [Generation(text=odd + str(i)), chat(odd)]
        hit = cache.lookup(odd + SPLIT_PAIR, odd)
        assert hit == [Generation(text=str(i), generation_info={odd: [odd]})]
        assert cache.lookup(odd + "😀", odd) is None
    assert len(cache) == 2 * len(ODD)


def test_a_split_surrogate_pair_in_a_value_is_kept_or_refused_never_altered(
    make_cache: Factory,
) -> None:
    # JSON joins the escapes of a high and a low surrogate into one character, so SQLite
    # and Redis cannot store such a str: they refuse it (before the fix they returned "😀").
    # InMemoryCache stores objects and returns it as written.
    cache = make_cache()
    value = [Generation(text="a" + SPLIT_PAIR)]
    if type(cache).__name__ == "InMemoryCache":
        cache.update(P, L, value)
        assert cache.lookup(P, L) == value
    else:
        with pytest.raises(TypeError, match="surrogate pair as two code points"):
            cache.update(P, L, value)
        assert cache.lookup(P, L) is None


# -- a Redis password never shows --------------------------------------------------------

PASSWORD = "s3cr3t:p@ss/w0rd#1"  # ':', '@', '/' and '#' must be percent-encoded in a URL
WRONG = "wr0ng:p@ss/w0rd#2"
MARKERS = ("s3cr3t", "wr0ng", quote(PASSWORD, safe=""), quote(WRONG, safe=""))


def _url(form: str, port: int, password: str) -> str:
    encoded = quote(password, safe="")
    if form == "colon":
        return f"redis://:{encoded}@127.0.0.1:{port}/0"
    if form == "user":
        return f"redis://alice:{encoded}@127.0.0.1:{port}/0"
    return f"redis://127.0.0.1:{port}/0?password={encoded}"


def _server(form: str) -> RedisServer:
    """A server of its own, whose password is set once it runs.

    (``RedisServer(password=...)`` puts the password in its URL unencoded, which a
    password with ``@``, ``/`` or ``#`` breaks.)
    """
    server = RedisServer().start()
    with server.client() as admin:
        if form == "user":  # an ACL user; the default user keeps needing no password
            admin.acl_setuser(
                "alice",
                enabled=True,
                passwords=[f"+{PASSWORD}"],
                keys=["*"],
                channels=["*"],
                commands=["+@all"],
            )
        else:
            admin.config_set("requirepass", PASSWORD)
    return server


def _texts(exc: BaseException) -> list[str]:
    """str, repr and the formatted traceback of an exception and all it chains."""
    texts, seen, todo = ["".join(traceback.format_exception(exc))], set(), [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current), repr(current.args)]
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
    return texts


def _failures(cache: RedisCache) -> list[str]:
    """Every text the strict cache's failing calls produce, sync and async."""
    texts: list[str] = []

    async def async_calls() -> None:
        for call in (cache.alookup(P, L), cache.aupdate(P, L, gens("x")), cache.aclear()):
            with pytest.raises(BackendError) as info:
                await call
            texts.extend(_texts(info.value))

    for sync_call in (
        lambda: cache.lookup(P, L),
        lambda: cache.update(P, L, gens("x")),
        cache.clear,
        lambda: len(cache),
        lambda: list(cache.entries()),
    ):
        with pytest.raises(BackendError) as info:
            sync_call()
        texts.extend(_texts(info.value))
    asyncio.run(async_calls())
    return texts


def _assert_clean(texts: list[str]) -> None:
    for text in texts:
        for marker in MARKERS:
            assert marker not in text, f"{marker!r} in {text[:300]!r}"


@pytest.mark.parametrize("form", ["colon", "user", "query"])
def test_a_password_never_shows_with_a_wrong_password_or_an_outage(
    form: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, redis-py's included
    server = _server(form)
    made: list[RedisCache] = []

    def cache(password: str, **options: Any) -> RedisCache:
        made.append(RedisCache(_url(form, server.port, password), socket_timeout=0.3, **options))
        return made[-1]

    try:
        right = cache(PASSWORD, near_cache=True)
        right.update(P, L, gens("behind a password"))
        assert right.lookup(P, L) == gens("behind a password")  # the URL authenticates
        texts = [repr(right), *(repr(cache(p)) for p in (PASSWORD, WRONG))]

        wrong = cache(WRONG, strict=True)
        texts += _failures(wrong)  # authentication fails
        assert cache(WRONG).lookup(P, L) is None  # logged, not raised
        cache(WRONG, near_cache=True).lookup(P, L)  # its listener logs the failure too

        server.kill()  # an outage, on both the right and the wrong password
        texts += _failures(cache(PASSWORD, strict=True))
        texts += _failures(wrong)
        assert right.lookup(P, L) is None
        right.update(P, L, gens("lost"))
        time.sleep(0.3)  # the near cache's listener notices and logs
        texts.append(caplog.text)
        assert "failed" in caplog.text  # the logs were captured, and are clean
        _assert_clean(texts)
    finally:
        for made_cache in made:
            made_cache.close()
        server.stop()


@pytest.mark.parametrize(
    "url",
    [
        f"redis://:{quote(PASSWORD, safe='')}@127.0.0.1:notaport/0",
        f"redis://127.0.0.1:6379/0?password={quote(PASSWORD, safe='')}&socket_timeout=x",
        f"http://:{quote(PASSWORD, safe='')}@127.0.0.1:6379/0",
    ],
    ids=["bad-port", "bad-option", "bad-scheme"],
)
def test_an_invalid_url_error_does_not_show_the_password(url: str) -> None:
    with pytest.raises(ValueError, match="Redis URL") as info:
        RedisCache(url)
    _assert_clean(_texts(info.value))


# -- owner-only files ---------------------------------------------------------------------


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """umask 022, so that owner-only permissions must be set on purpose."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_redis_export_is_owner_only(tmp_path: Path, namespace: str, loose_umask: None) -> None:
    cache = RedisCache(shared_server().url, namespace=namespace)
    try:
        cache.update("a private prompt", L, gens("a private answer"))
        dump = tmp_path / "dump.jsonl"
        result = gencache("export", shared_server().url, "--namespace", namespace, "-o", str(dump))
        assert result.returncode == 0, result.stderr
        assert "a private answer" in dump.read_text()
        assert _mode(dump) == 0o600
    finally:
        cache.clear()


def test_an_export_over_an_existing_readable_file_makes_it_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "cache.sqlite3"
    with SQLiteCache(db) as cache:
        cache.update("a private prompt", L, gens("a private answer"))
    dump = tmp_path / "dump.jsonl"
    dump.write_text("")
    dump.chmod(0o644)
    result = gencache("export", str(db), "-o", str(dump))
    assert result.returncode == 0, result.stderr
    assert "a private answer" in dump.read_text()
    assert _mode(dump) == 0o600
