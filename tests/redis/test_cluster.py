"""RedisCache on a real three-node Redis Cluster (``redis-cli --cluster create``)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis
from redis.cluster import RedisCluster

from gencache import control
from gencache.redis import RedisCache
from tests.backends.redis import RedisServer, free_port
from tests.helpers import gens

L = "llm"


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    nodes = [
        RedisServer("--cluster-enabled", "yes", "--cluster-node-timeout", "2000", port=port)
        for port in _cluster_ports(3)
    ]
    try:
        for node in nodes:
            node.start()
        cli = shutil.which("redis-cli")
        assert cli, "redis-cli is needed to create the test cluster"
        addresses = [f"127.0.0.1:{n.port}" for n in nodes]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        deadline = time.monotonic() + 20
        for node in nodes:
            with node.client() as client:
                while client.cluster("info")["cluster_state"] != "ok":
                    assert time.monotonic() < deadline, "the cluster did not come up"
                    time.sleep(0.05)
        client = RedisCluster(host="127.0.0.1", port=nodes[0].port, socket_timeout=5)
        yield client
        client.close()
    finally:
        for node in nodes:
            node.stop()


def _cluster_ports(n: int) -> list[int]:
    """Free ports whose cluster-bus port (port + 10000) is valid and free too."""
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port + 10_000 <= 65_535 and _is_free(port + 10_000) and port not in ports:
            ports.append(port)
    return ports


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture
def namespace() -> str:
    return f"c-{uuid.uuid4().hex[:12]}"


def test_entries_spread_over_the_nodes(cluster: RedisCluster, namespace: str) -> None:
    cache = RedisCache(cluster, namespace=namespace, strict=True)
    prompts = [f"prompt {i}" for i in range(300)]
    for p in prompts:
        cache.update(p, L, gens(p))
    assert all(cache.lookup(p, L) == gens(p) for p in prompts)
    assert len(cache) == 300
    assert {e.prompt for e in cache.entries()} == set(prompts)
    primaries = cluster.get_primaries()  # type: ignore[no-untyped-call]
    assert len(primaries) == 3
    assert all(cluster.dbsize(target_nodes=node) > 0 for node in primaries)
    cache.clear()
    assert len(cache) == 0


def test_clear_keeps_other_namespaces_and_plain_keys(cluster: RedisCluster, namespace: str) -> None:
    cache = RedisCache(cluster, namespace=namespace, strict=True)
    other = RedisCache(cluster, namespace=namespace + "2", strict=True)
    for i in range(50):
        cache.update(f"p{i}", L, gens("x"))
        other.update(f"p{i}", L, gens("y"))
    cluster.set(f"plain-{namespace}", b"kept")
    cache.clear()
    assert len(cache) == 0
    assert len(other) == 50
    assert cluster.get(f"plain-{namespace}") == b"kept"
    other.clear()
    cluster.delete(f"plain-{namespace}")


def test_ttl_and_bad_values(cluster: RedisCluster, namespace: str) -> None:
    cache = RedisCache(cluster, namespace=namespace, ttl=30, strict=True)
    cache.update("p", L, gens("x"))
    key = cache.redis_key("p", L)
    assert 0 < cluster.pttl(key) <= 30_000
    cluster.set(key, b"garbage")
    assert cache.lookup("p", L) is None
    assert cluster.exists(key) == 0
    cluster.hset(key, mapping={"a": "b"})  # another type
    assert cache.lookup("p", L) is None
    assert cluster.exists(key) == 0
    cache.update("p", L, gens("x"))
    copy = cache.redis_key("q", L)
    cluster.set(copy, cluster.get(key) or b"")  # another slot, most likely
    assert cache.lookup("q", L) is None
    assert cluster.exists(copy) == 0
    assert cache.lookup("p", L) == gens("x")


def test_scopes_on_a_cluster(cluster: RedisCluster, namespace: str) -> None:
    cache = RedisCache(cluster, namespace=namespace, strict=True)
    for i in range(30):
        cache.update(f"p{i}", L, gens("none"))
        with control(scope="tenant"):
            cache.update(f"p{i}", L, gens("tenant"))
    assert len(cache) == 60
    cache.clear(scope="tenant")
    assert len(cache) == 30
    with control(scope="tenant"):
        assert cache.lookup("p3", L) is None
    assert cache.lookup("p3", L) == gens("none")
    cache.clear()
    assert len(cache) == 0


def test_a_cluster_client_with_decode_responses(cluster: RedisCluster, namespace: str) -> None:
    node = cluster.get_default_node()  # type: ignore[no-untyped-call]
    client = RedisCluster(host=node.host, port=node.port, decode_responses=True)
    try:
        cache = RedisCache(client, namespace=namespace, strict=True)
        for i in range(20):
            cache.update(f"p{i}", L, gens(str(i)))
        assert cache.lookup("p7", L) == gens("7")
        assert {e.prompt for e in cache.entries()} == {f"p{i}" for i in range(20)}
        cluster.set(cache.redis_key("bad", L), b"\xff not UTF-8")
        assert cache.lookup("bad", L) is None
        assert cluster.exists(cache.redis_key("bad", L)) == 0
        cache.clear()
        assert len(cache) == 0
    finally:
        client.close()


async def test_async_with_a_cluster_client(cluster: RedisCluster, namespace: str) -> None:
    node = cluster.get_default_node()  # type: ignore[no-untyped-call]
    async_client = aioredis.RedisCluster(host=node.host, port=node.port)
    try:
        cache = RedisCache(cluster, namespace=namespace, async_client=async_client, strict=True)
        for i in range(50):
            await cache.aupdate(f"p{i}", L, gens(str(i)))
        assert cache.lookup("p7", L) == gens("7")
        assert await cache.alookup("p8", L) == gens("8")
        cluster.set(cache.redis_key("p9", L), b"garbage")
        assert await cache.alookup("p9", L) is None
        assert cluster.exists(cache.redis_key("p9", L)) == 0
        await cache.aclear(scope="none here")
        assert len(cache) == 49
        await cache.aclear()
        assert len(cache) == 0
    finally:
        await async_client.aclose()


def test_near_cache_is_refused_on_a_cluster(cluster: RedisCluster) -> None:
    with pytest.raises(ValueError, match="RedisCluster"):
        RedisCache(cluster, near_cache=True)
