"""Single-flight leases in Redis: the owner's write releases its lease in the same round trip."""

from __future__ import annotations

from typing import Any

import pytest
import redis.exceptions
from redis.client import Redis

from gencache.redis import RedisCache
from gencache.redis._lease import RedisLeases
from tests.helpers import gens
from tests.redis.conftest import MakeCache

P, L = "What is the capital of France?", "model='m' temperature=0"


def _leases(raw: Redis, namespace: str) -> list[bytes]:
    return sorted(raw.scan_iter(match=f"{namespace}:lease:*"))


def _calls(raw: Redis, command: str) -> int:
    stats: dict[str, Any] = raw.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


@pytest.mark.parametrize("given_client", [False, True], ids=["url", "client"])
def test_the_owner_s_write_releases_its_lease(
    make: MakeCache,
    raw: Redis,
    namespace: str,
    server: Any,
    given_client: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Built from a URL the cache sends SET and the release together on a kept connection;
    # given a client, in one pipeline. Either way the lease is gone once the entry is
    # stored, and the flight's settle sends nothing more.
    client = Redis.from_url(server.url) if given_client else None
    cache = (
        make(client, single_flight=True, strict=True)
        if client
        else make(single_flight=True, strict=True)
    )
    try:
        assert cache.lookup(P, L) is None  # a miss: this process owns the flight and lease
        assert len(_leases(raw, namespace)) == 1
        evals = _calls(raw, "eval")
        at_settle: list[list[bytes]] = []
        release = RedisLeases.release

        def watched(self: RedisLeases, *args: Any, **kwargs: Any) -> None:
            at_settle.append(_leases(raw, namespace))
            release(self, *args, **kwargs)

        monkeypatch.setattr(RedisLeases, "release", watched)
        cache.update(P, L, gens("Paris"))
        assert at_settle == [[]]  # the write had released it already
        assert _leases(raw, namespace) == []
        assert _calls(raw, "eval") == evals + 1  # one release, sent with the SET
        assert cache.lookup(P, L) == gens("Paris")
    finally:
        if client is not None:
            client.close()


def test_a_failed_write_leaves_the_release_to_the_settle(
    make: MakeCache, raw: Redis, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache: RedisCache = make(single_flight=True)  # default policy: a failed write is logged
    assert cache.lookup(P, L) is None
    assert len(_leases(raw, namespace)) == 1
    lane = cache._lane
    assert lane is not None

    def fail(*commands: object) -> list[object]:
        raise redis.exceptions.ConnectionError("the write failed")

    monkeypatch.setattr(lane, "run", fail)
    cache.update(P, L, gens("Paris"))  # never raises into the model call
    monkeypatch.undo()
    assert _leases(raw, namespace) == []  # released when the flight settled
    assert cache.lookup(P, L) is None  # nothing was stored: a later call pays again
