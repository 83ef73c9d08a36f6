"""A Redis password never shows; a Redis export is owner-only.

* A Redis password, in each URL spelling, never in logs (any logger), reprs or the
  exceptions callers get, including every chained ``__cause__``/``__context__`` and the
  formatted traceback: with a wrong password, and during an outage.
* Owner-only files: the SQLite database, WAL and SHM (tests/sqlite/test_files.py) and a
  new CLI export (tests/cli/test_sqlite_commands.py) are covered there; here, a Redis export.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from gencache.errors import BackendError
from gencache.redis import RedisCache
from tests.backends.redis import RedisServer, shared_server
from tests.cli.test_sqlite_commands import gencache
from tests.helpers import gens

pytestmark = pytest.mark.fault

P, L = "What is the capital of France?", "model='m' temperature=0"


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


def _near_records(caplog: pytest.LogCaptureFixture) -> int:
    """How many warnings the near cache's listeners have logged so far."""
    return sum(
        r.levelno >= logging.WARNING
        and r.name.startswith("gencache")
        and ("near" in r.name or "near cache" in r.getMessage())
        for r in caplog.records
    )


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

        near_before = _near_records(caplog)
        server.kill()  # an outage, on both the right and the wrong password
        texts += _failures(cache(PASSWORD, strict=True))
        texts += _failures(wrong)
        assert right.lookup(P, L) is None
        right.update(P, L, gens("lost"))
        # The near cache's listener notices the outage and logs it: wait for that record
        # (not a fixed sleep, which a slow machine may outlast), then check it too.
        deadline = time.monotonic() + 60
        while _near_records(caplog) == near_before:
            assert time.monotonic() < deadline, "the near cache's listener logged nothing"
            time.sleep(0.01)
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
