"""``gencache.langgraph.NodeCache``: real LangGraph graphs cached on every backend.

Each graph counts its node's executions: a cached node must not run again for the same
input, must run for a new one, and must run again after expiry or ``clear_cache()``.
The hostile cases store values whose class claims to be ``os.system`` or
``subprocess.Popen`` (or plant raw ``pickle`` / ``json`` entries) and check that reading
them back never imports nor calls anything: the command would create a file.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import enum
import json
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langchain_core.outputs import Generation
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import CachePolicy

from gencache import GenCache, InMemoryCache, control
from gencache.langgraph import LLM_STRING, SCOPE_PREFIX, NodeCache
from tests.conftest import BACKENDS, Factory, backends_with
from tests.helpers import FakeClock, gens

ROOT = Path(__file__).resolve().parents[2]
P, L = "What is the capital of France?", "model='m' temperature=0"


class State(TypedDict, total=False):
    x: int
    y: Any
    z: Any


Graph = CompiledStateGraph[Any, Any, Any, Any]


def build(
    cache: NodeCache, *, ttl: int | None = None, node: Callable[[int], Any] | None = None
) -> tuple[Graph, list[int]]:
    """``START -> double -> END`` with a cached ``double``; returns the graph and its runs."""
    runs: list[int] = []

    def double(state: State) -> State:
        runs.append(state["x"])
        return {"y": node(state["x"]) if node else 2 * state["x"]}

    graph = StateGraph(State)
    graph.add_node("double", double, cache_policy=CachePolicy(ttl=ttl))
    graph.add_edge(START, "double")
    graph.add_edge("double", END)
    return graph.compile(cache=cache), runs


def build_async(cache: NodeCache) -> tuple[Graph, list[int]]:
    """As :func:`build`, with an async node."""
    runs: list[int] = []

    async def double(state: State) -> State:
        await asyncio.sleep(0)
        runs.append(state["x"])
        return {"y": 2 * state["x"]}

    graph = StateGraph(State)
    graph.add_node("double", double, cache_policy=CachePolicy())
    graph.add_edge(START, "double")
    graph.add_edge("double", END)
    return graph.compile(cache=cache), runs


def build_two(cache: NodeCache) -> tuple[Graph, dict[str, int]]:
    """``START -> first -> second -> END``, both cached; returns the graph and run counts."""
    runs = {"first": 0, "second": 0}

    def first(state: State) -> State:
        runs["first"] += 1
        return {"y": state["x"] + 1}

    def second(state: State) -> State:
        runs["second"] += 1
        return {"z": state["y"] * 10}

    graph = StateGraph(State)
    graph.add_node("first", first, cache_policy=CachePolicy())
    graph.add_node("second", second, cache_policy=CachePolicy())
    graph.add_edge(START, "first")
    graph.add_edge("first", "second")
    graph.add_edge("second", END)
    return graph.compile(cache=cache), runs


def plant(backend: GenCache, namespace: tuple[str, ...], key: str, text: str) -> None:
    """Write a raw entry where NodeCache keeps ``(namespace, key)`` (docs/langgraph.md)."""
    scope = SCOPE_PREFIX + json.dumps(list(namespace), separators=(",", ":"))
    prompt = SCOPE_PREFIX + json.dumps([list(namespace), key], separators=(",", ":"))
    with control(scope=scope):
        backend.update(prompt, LLM_STRING, [Generation(text=text)])


# -- a node's result is reused ----------------------------------------------------------


def test_same_input_is_answered_from_the_cache(make_cache: Factory) -> None:
    backend = make_cache()
    app, runs = build(NodeCache(backend))
    assert app.invoke({"x": 2}) == {"x": 2, "y": 4}
    assert app.invoke({"x": 2}) == {"x": 2, "y": 4}
    assert runs == [2]
    assert app.invoke({"x": 3}) == {"x": 3, "y": 6}
    assert runs == [2, 3]
    assert list(app.stream({"x": 3})) == [{"double": {"y": 6}, "__metadata__": {"cached": True}}]
    assert runs == [2, 3]
    stats = backend.stats()
    assert (stats.hits, stats.misses, stats.updates, stats.size) == (2, 2, 2, 2)
    assert len(backend) == 2


async def test_ainvoke_is_answered_from_the_cache(make_cache: Factory) -> None:
    backend = make_cache()
    app, runs = build_async(NodeCache(backend))
    assert await app.ainvoke({"x": 2}) == {"x": 2, "y": 4}
    assert await app.ainvoke({"x": 2}) == {"x": 2, "y": 4}
    assert runs == [2]
    assert await app.ainvoke({"x": 5}) == {"x": 5, "y": 10}
    assert runs == [2, 5]
    assert (backend.stats().hits, len(backend)) == (1, 2)


def test_another_node_cache_on_the_same_backend_reads_the_entries(make_cache: Factory) -> None:
    backend = make_cache()
    first, first_runs = build(NodeCache(backend))
    first.invoke({"x": 7})
    again, again_runs = build(NodeCache(backend))
    assert again.invoke({"x": 7}) == {"x": 7, "y": 14}
    assert (first_runs, again_runs) == ([7], [])


def test_results_of_every_json_plus_type_survive_the_round_trip(make_cache: Factory) -> None:
    import datetime
    import decimal

    value = {
        "when": datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.timezone.utc),
        "amount": decimal.Decimal("1.25"),
        "tags": {"a", "b"},
        "id": uuid.UUID(int=1),
        "raw": b"\x00\xff",
        "none": None,
    }
    app, runs = build(NodeCache(make_cache()), node=lambda _: value)
    assert app.invoke({"x": 1})["y"] == value
    assert app.invoke({"x": 1})["y"] == value
    assert runs == [1]


# -- expiry -------------------------------------------------------------------------------


@pytest.mark.parametrize("make_cache", backends_with("timer"), indirect=True)
def test_cache_policy_ttl_expires_the_entry(make_cache: Factory) -> None:
    clock = FakeClock()
    app, runs = build(NodeCache(make_cache(timer=clock)), ttl=10)
    app.invoke({"x": 1})
    clock.advance(9)
    app.invoke({"x": 1})
    assert runs == [1]
    clock.advance(2)
    app.invoke({"x": 1})
    assert runs == [1, 1]
    app.invoke({"x": 1})  # stored again, with a new ttl
    assert runs == [1, 1]


@pytest.mark.parametrize(
    "make_cache",
    [pytest.param(b, id=b.name) for b in BACKENDS if "timer" not in b.features],
    indirect=True,
)
def test_cache_policy_ttl_expires_the_entry_in_real_time(make_cache: Factory) -> None:
    app, runs = build(NodeCache(make_cache()), ttl=1)
    app.invoke({"x": 1})
    deadline = time.monotonic() + 30  # generous: the machine is slow and shared
    while len(runs) == 1 and time.monotonic() < deadline:
        time.sleep(0.1)
        app.invoke({"x": 1})
    assert runs == [1, 1]


@pytest.mark.parametrize("make_cache", backends_with("ttl", "timer"), indirect=True)
def test_without_a_policy_ttl_the_backend_ttl_applies(make_cache: Factory) -> None:
    clock = FakeClock()
    app, runs = build(NodeCache(make_cache(ttl=10, timer=clock)))
    app.invoke({"x": 1})
    clock.advance(11)
    app.invoke({"x": 1})
    assert runs == [1, 1]


def test_a_ttl_of_zero_stores_nothing(make_cache: Factory) -> None:
    backend = make_cache()
    app, runs = build(NodeCache(backend), ttl=0)
    app.invoke({"x": 1})
    app.invoke({"x": 1})
    assert (runs, len(backend)) == ([1, 1], 0)


# -- clearing -----------------------------------------------------------------------------


def test_clear_cache_removes_exactly_those_nodes(make_cache: Factory) -> None:
    backend = make_cache()
    backend.update(P, L, gens("an LLM answer sharing the backend"))
    app, runs = build_two(NodeCache(backend))
    assert app.invoke({"x": 1}) == {"x": 1, "y": 2, "z": 20}
    assert len(backend) == 3
    app.clear_cache(["first"])
    assert len(backend) == 2
    app.invoke({"x": 1})
    assert runs == {"first": 2, "second": 1}
    app.clear_cache()
    assert len(backend) == 1
    app.invoke({"x": 1})
    assert runs == {"first": 3, "second": 2}
    assert backend.lookup(P, L) == gens("an LLM answer sharing the backend")


async def test_aclear_cache_removes_exactly_those_nodes(make_cache: Factory) -> None:
    backend = make_cache()
    await backend.aupdate(P, L, gens("kept"))
    app, runs = build_two(NodeCache(backend))
    await app.ainvoke({"x": 1})
    await app.aclear_cache(["second"])
    await app.ainvoke({"x": 1})
    assert runs == {"first": 1, "second": 2}
    await app.aclear_cache()
    assert len(backend) == 1
    assert await backend.alookup(P, L) == gens("kept")


def test_clear_without_namespaces_keeps_other_entries(make_cache: Factory) -> None:
    backend = make_cache()
    backend.update(P, L, gens("llm"))
    with control(scope="tenant-a"):
        backend.update(P, L, gens("tenant"))
    cache: NodeCache = NodeCache(backend)
    cache.set({(("graph", "a"), "k1"): ("a", None), (("graph", "b"), "k2"): ("b", None)})
    assert len(backend) == 4
    cache.clear()
    assert cache.get([(("graph", "a"), "k1"), (("graph", "b"), "k2")]) == {}
    assert len(backend) == 2
    assert backend.lookup(P, L) == gens("llm")
    with control(scope="tenant-a"):
        assert backend.lookup(P, L) == gens("tenant")


async def test_aclear_without_namespaces_keeps_other_entries(make_cache: Factory) -> None:
    backend = make_cache()
    await backend.aupdate(P, L, gens("llm"))
    cache: NodeCache = NodeCache(backend)
    await cache.aset({(("graph", "a"), "k"): (1, None), (("graph", "b"), "k"): (2, None)})
    await cache.aclear()
    assert len(backend) == 1


def test_clear_with_no_namespaces_listed_clears_nothing(make_cache: Factory) -> None:
    backend = make_cache()
    cache: NodeCache = NodeCache(backend)
    cache.set({(("graph", "a"), "k"): (1, None)})
    cache.clear([])
    assert cache.get([(("graph", "a"), "k")]) == {(("graph", "a"), "k"): 1}


# -- the backend's bound, policy and statistics ---------------------------------------------


@pytest.mark.parametrize("make_cache", backends_with("maxsize"), indirect=True)
def test_the_backend_maxsize_bounds_node_entries(make_cache: Factory) -> None:
    backend = make_cache(maxsize=3)
    app, runs = build(NodeCache(backend))
    for x in range(6):
        app.invoke({"x": x})
    assert len(backend) == 3
    stats = backend.stats()
    assert (stats.size, stats.maxsize, stats.evictions) == (3, 3, 3)
    app.invoke({"x": 5})  # among the newest three: kept
    assert runs == [0, 1, 2, 3, 4, 5]
    app.invoke({"x": 0})  # the oldest: evicted first
    assert runs == [0, 1, 2, 3, 4, 5, 0]


@pytest.mark.parametrize("make_cache", backends_with("maxsize", "policy"), indirect=True)
def test_the_lru_policy_keeps_the_node_result_that_is_read(make_cache: Factory) -> None:
    backend = make_cache(maxsize=2, policy="lru")
    app, runs = build(NodeCache(backend))
    app.invoke({"x": 1})
    app.invoke({"x": 2})
    app.invoke({"x": 1})  # a hit: 1 becomes the most recent
    app.invoke({"x": 3})  # evicts 2
    app.invoke({"x": 1})
    assert runs == [1, 2, 3]


def test_read_false_and_write_false_apply_to_node_results(make_cache: Factory) -> None:
    backend = make_cache()
    app, runs = build(NodeCache(backend))
    with control(write=False):
        app.invoke({"x": 1})
    assert len(backend) == 0
    app.invoke({"x": 1})
    with control(read=False):
        app.invoke({"x": 1})
    assert runs == [1, 1, 1]
    app.invoke({"x": 1})
    assert runs == [1, 1, 1]


# -- values: the strict serializer ----------------------------------------------------------


def os_system(command: str) -> Any:
    """A value whose class claims to be ``os.system``: LangGraph stores ``("os", "system",
    command)``, which a permissive serializer revives as ``os.system(command)``."""
    claim = enum.Enum("system", {"RUN": command})  # type: ignore[misc]
    claim.__module__ = "os"
    return claim.RUN


def popen(command: list[str]) -> Any:
    """A value whose class claims to be ``subprocess.Popen``: revived as ``Popen(args=...)``."""
    claim = collections.namedtuple("Popen", ["args"], module="subprocess")  # type: ignore[name-match]
    return claim(args=command)


def hostile_value(hostile: str, marker: Path) -> tuple[Any, Any]:
    """The hostile value that would create ``marker``, and the plain data it must read as."""
    if hostile == "os.system":
        return os_system(f"touch {marker}"), f"touch {marker}"
    return popen(["touch", str(marker)]), {"args": ["touch", str(marker)]}


@pytest.mark.parametrize("hostile", ["os.system", "subprocess.Popen"])
def test_the_hostile_values_run_a_command_under_a_permissive_serializer(
    tmp_path: Path, hostile: str
) -> None:
    # The oracle for the test below: LangGraph's default cache serializer (no strict
    # mode) really does run the command, so "no file" there means NodeCache stopped it.
    marker = tmp_path / "pwned"
    value, _ = hostile_value(hostile, marker)
    permissive = JsonPlusSerializer(pickle_fallback=False, allowed_msgpack_modules=True)
    revived = permissive.loads_typed(permissive.dumps_typed(value))
    if isinstance(revived, subprocess.Popen):  # os.system waits for its command itself
        revived.wait(30)
    assert marker.exists()


@pytest.mark.parametrize("hostile", ["os.system", "subprocess.Popen"])
def test_a_value_naming_a_dangerous_callable_comes_back_plain(
    make_cache: Factory, tmp_path: Path, hostile: str
) -> None:
    marker = tmp_path / "pwned"
    value, plain = hostile_value(hostile, marker)
    app, runs = build(NodeCache(make_cache()), node=lambda _: value)
    assert app.invoke({"x": 1})["y"] is value  # the node's own result, not from the cache
    assert app.invoke({"x": 1})["y"] == plain  # from the cache: plain data
    assert runs == [1]
    time.sleep(0.2)  # a spawned command would have had time to create the file
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(("pickle", b"cos\nsystem\n(S'touch {marker}'\ntR."), id="pickle"),
        pytest.param(
            (
                "json",
                b'{"lc": 2, "type": "constructor", "id": ["os", "system"],'
                b' "args": ["touch {marker}"]}',
            ),
            id="json-constructor",
        ),
        pytest.param(
            (
                "json",
                b'{"lc": 1, "type": "constructor", "id": ["os", "system"],'
                b' "kwargs": {"command": "touch {marker}"}}',
            ),
            id="json-langchain",
        ),
    ],
)
def test_a_planted_pickle_or_json_entry_is_a_miss(
    make_cache: Factory, tmp_path: Path, payload: tuple[str, bytes]
) -> None:
    import base64

    marker = tmp_path / "pwned"
    tag, data = payload[0], payload[1].replace(b"{marker}", str(marker).encode())
    backend = make_cache()
    cache: NodeCache = NodeCache(backend)
    plant(backend, ("graph", "node"), "k", f"{tag}:{base64.b64encode(data).decode()}")
    assert cache.get([(("graph", "node"), "k")]) == {}
    assert not marker.exists()


@pytest.mark.parametrize(
    "generations",
    [
        pytest.param([Generation(text="msgpack:not base64!")], id="not-base64"),
        pytest.param([Generation(text="msgpack")], id="no-separator"),
        pytest.param([Generation(text="null:"), Generation(text="null:")], id="two"),
        pytest.param([Generation(text="msgpack:wQ==")], id="bad-msgpack"),
    ],
)
def test_a_damaged_entry_is_a_miss_and_is_overwritten(
    make_cache: Factory, generations: list[Generation]
) -> None:
    backend = make_cache()
    cache: NodeCache = NodeCache(backend)
    namespace, key = ("graph", "node"), "k"
    plant(backend, namespace, key, "null:")
    prompt = SCOPE_PREFIX + json.dumps([list(namespace), key], separators=(",", ":"))
    with control(scope=SCOPE_PREFIX + json.dumps(list(namespace), separators=(",", ":"))):
        backend.update(prompt, LLM_STRING, generations)
    assert cache.get([(namespace, key)]) == {}
    cache.set({(namespace, key): ("good", None)})
    assert cache.get([(namespace, key)]) == {(namespace, key): "good"}


@dataclasses.dataclass
class Point:
    """A user data class in a graph's state."""

    x: int
    y: int


def test_user_classes_are_rebuilt_only_when_allowed(make_cache: Factory) -> None:
    backend = make_cache()
    strict, _ = build(NodeCache(backend), node=lambda x: Point(x, x))
    strict.invoke({"x": 1})
    assert strict.invoke({"x": 1})["y"] == {"x": 1, "y": 1}
    allowing, _ = build(NodeCache(backend, allowed_types=[Point]), node=lambda x: Point(x, x))
    assert allowing.invoke({"x": 1})["y"] == Point(1, 1)


def test_a_value_the_serializer_refuses_is_not_cached(
    make_cache: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    backend = make_cache()
    opaque = object()
    app, runs = build(NodeCache(backend), node=lambda _: opaque)
    assert app.invoke({"x": 1})["y"] is opaque
    assert app.invoke({"x": 1})["y"] is opaque
    assert (runs, len(backend)) == ([1, 1], 0)
    assert "not cached" in caplog.text


# -- LangGraph's BaseCache calls directly ---------------------------------------------------


def test_get_and_set_many_keys_and_namespaces(make_cache: Factory) -> None:
    cache: NodeCache = NodeCache(make_cache())
    pairs: dict[Any, tuple[Any, int | None]] = {
        (("graph", "node1"), "key"): ({"result": 1}, None),
        (("graph", "node2"), "key"): ({"result": 2}, 60),
        (("other", "node"), "key"): ({"result": 3}, None),
        ((), "empty namespace"): (None, None),
        (("a:b,c", 'quote"\\', "ünï\u2028"), "key"): (b"bytes", None),
    }
    cache.set(pairs)
    assert cache.get(list(pairs)) == {full: value for full, (value, _) in pairs.items()}
    assert cache.get([(("graph", "node3"), "key")]) == {}
    assert cache.get([]) == {}
    cache.set({})


async def test_aget_and_aset_many_keys(make_cache: Factory) -> None:
    cache: NodeCache = NodeCache(make_cache())
    pairs: dict[Any, tuple[Any, int | None]] = {
        (("graph", f"node{i}"), f"key{i}"): (list(range(i)), None) for i in range(8)
    }
    await cache.aset(pairs)
    missing = (("graph", "node"), "missing")
    got = await cache.aget([*pairs, missing])
    assert got == {full: value for full, (value, _) in pairs.items()}


def test_large_values(make_cache: Factory) -> None:
    cache: NodeCache = NodeCache(make_cache())
    value = {"big": list(range(10_000)), "text": "x" * 100_000}
    cache.set({(("g", "n"), "k"): (value, None)})
    assert cache.get([(("g", "n"), "k")]) == {(("g", "n"), "k"): value}


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(TypeError, match="gencache cache"):
        NodeCache(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="allowed_types"):
        NodeCache(InMemoryCache(), allowed_types=[True])  # type: ignore[list-item]
    cache: NodeCache = NodeCache(InMemoryCache())
    with pytest.raises(TypeError, match="namespace"):
        cache.get([(["a"], "k")])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="key"):
        cache.set({(("a",), 1): ("v", None)})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="ttl"):
        cache.set({(("a",), "k"): ("v", "10")})  # type: ignore[dict-item]


# -- single-flight: concurrent identical runs execute a cached node once ---------------------

# Far above any wait these tests expect: a run that was never released waits this long,
# and fails the "released at once" bound (half of it) instead of passing late.
FLIGHT_TIMEOUT = 100.0


class NodeError(RuntimeError):
    """What a failing node raises."""


def build_slow(
    cache: NodeCache,
    *,
    asynchronous: bool = False,
    fail_first: int = 0,
    result: Callable[[int], Any] | None = None,
) -> tuple[Graph, list[int]]:
    """``START -> slow -> END`` with a cached node that takes 0.3 s; returns its runs.

    The first ``fail_first`` runs of the node raise :class:`NodeError`.
    """
    runs: list[int] = []
    lock = threading.Lock()

    def body(state: State) -> State:
        with lock:
            runs.append(state["x"])
            number = len(runs)
        if number <= fail_first:
            msg = f"node run {number} failed"
            raise NodeError(msg)
        return {"y": result(state["x"]) if result else 2 * state["x"]}

    def slow(state: State) -> State:
        time.sleep(0.3)
        return body(state)

    async def aslow(state: State) -> State:
        await asyncio.sleep(0.3)
        return body(state)

    graph = StateGraph(State)
    graph.add_node("slow", aslow if asynchronous else slow, cache_policy=CachePolicy())
    graph.add_edge(START, "slow")
    graph.add_edge("slow", END)
    return graph.compile(cache=cache), runs


def together(n: int, ask: Callable[[], Any]) -> list[Any]:
    """``ask()`` in ``n`` threads released at once; their results."""
    barrier = threading.Barrier(n)

    def one(_: int) -> Any:
        barrier.wait()
        return ask()

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def invoked(app: Graph) -> Any:
    try:
        return app.invoke({"x": 3})
    except NodeError:
        return "failed"


def test_concurrent_identical_invocations_run_a_cached_node_once(make_cache: Factory) -> None:
    backend = make_cache(single_flight=True, flight_timeout=FLIGHT_TIMEOUT)
    app, runs = build_slow(NodeCache(backend))
    results = together(8, lambda: app.invoke({"x": 3}))
    assert runs == [3]
    assert results == [{"x": 3, "y": 6}] * 8
    assert backend.stats().coalesced == 7
    assert len(backend) == 1


async def test_concurrent_identical_ainvokes_run_a_cached_node_once(make_cache: Factory) -> None:
    backend = make_cache(single_flight=True, flight_timeout=FLIGHT_TIMEOUT)
    app, runs = build_slow(NodeCache(backend), asynchronous=True)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    results = await asyncio.gather(*(app.ainvoke({"x": 3}) for _ in range(8)))
    ticking.cancel()
    assert runs == [3]
    assert results == [{"x": 3, "y": 6}] * 8
    assert backend.stats().coalesced == 7
    assert ticks > 5  # the loop ran on while seven runs waited for the node


def test_two_cached_nodes_of_one_step_run_once_each(make_cache: Factory) -> None:
    backend = make_cache(single_flight=True, flight_timeout=FLIGHT_TIMEOUT)
    runs = {"left": 0, "right": 0}
    lock = threading.Lock()

    def left(state: State) -> State:
        with lock:
            runs["left"] += 1
        time.sleep(0.3)
        return {"y": f"left of {state['x']}"}

    def right(state: State) -> State:
        with lock:
            runs["right"] += 1
        time.sleep(0.3)
        return {"z": f"right of {state['x']}"}

    graph = StateGraph(State)
    graph.add_node("left", left, cache_policy=CachePolicy())
    graph.add_node("right", right, cache_policy=CachePolicy())
    for name in ("left", "right"):
        graph.add_edge(START, name)
        graph.add_edge(name, END)
    app: Graph = graph.compile(cache=NodeCache(backend))
    results = together(8, lambda: app.invoke({"x": 1}))
    assert runs == {"left": 1, "right": 1}
    assert results == [{"x": 1, "y": "left of 1", "z": "right of 1"}] * 8


def test_a_failing_node_releases_the_waiting_invocations(make_cache: Factory) -> None:
    backend = make_cache(single_flight=True, flight_timeout=FLIGHT_TIMEOUT)
    app, runs = build_slow(NodeCache(backend), fail_first=1)
    start = time.monotonic()
    results = together(8, lambda: invoked(app))
    assert time.monotonic() - start < FLIGHT_TIMEOUT / 2  # released, not timed out
    # The owner's run failed; the others then ran the node themselves.
    assert results.count("failed") == 1
    assert results.count({"x": 3, "y": 6}) == 7
    assert 2 <= len(runs) <= 8


async def test_a_failing_async_node_releases_the_waiting_runs(make_cache: Factory) -> None:
    backend = make_cache(single_flight=True, flight_timeout=FLIGHT_TIMEOUT)
    app, runs = build_slow(NodeCache(backend), asynchronous=True, fail_first=1)
    results: list[Any] = []
    everyone = asyncio.Event()

    async def ask() -> None:
        try:
            results.append(await app.ainvoke({"x": 3}))
        except NodeError:
            results.append("failed")
        if len(results) == 8:
            everyone.set()
        await everyone.wait()  # no task ends early: only the failure itself can release

    start = time.monotonic()
    await asyncio.gather(*(ask() for _ in range(8)))
    assert time.monotonic() - start < FLIGHT_TIMEOUT / 2
    assert results.count("failed") == 1
    assert results.count({"x": 3, "y": 6}) == 7
    assert 2 <= len(runs) <= 8


def test_a_result_that_is_not_stored_releases_the_waiting_invocations(
    make_cache: Factory,
) -> None:
    backend = make_cache(single_flight=True, flight_timeout=FLIGHT_TIMEOUT)
    opaque = object()  # LangGraph's serializer refuses it: nothing is stored
    app, runs = build_slow(NodeCache(backend), result=lambda _: opaque)
    start = time.monotonic()
    results = together(8, lambda: app.invoke({"x": 3}))
    assert time.monotonic() - start < FLIGHT_TIMEOUT / 2
    assert all(r["y"] is opaque for r in results)
    assert 2 <= len(runs) <= 8
    assert len(backend) == 0


def test_an_interrupted_run_releases_the_waiting_invocations(make_cache: Factory) -> None:
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.types import interrupt

    backend = make_cache(single_flight=True, flight_timeout=FLIGHT_TIMEOUT)
    runs: list[int] = []

    def approve(state: State) -> State:
        runs.append(state["x"])
        time.sleep(0.3)
        return {"y": interrupt("approve?")}  # LangGraph never caches an interrupted node

    graph = StateGraph(State)
    graph.add_node("approve", approve, cache_policy=CachePolicy())
    graph.add_edge(START, "approve")
    graph.add_edge("approve", END)
    app: Graph = graph.compile(cache=NodeCache(backend), checkpointer=InMemorySaver())
    threads = iter(range(8))
    start = time.monotonic()
    results = together(
        8, lambda: app.invoke({"x": 1}, {"configurable": {"thread_id": str(next(threads))}})
    )
    assert time.monotonic() - start < FLIGHT_TIMEOUT / 2
    assert all("__interrupt__" in r for r in results)
    assert len(runs) >= 2
    assert len(backend) == 0


def test_without_single_flight_concurrent_invocations_each_run_the_node(
    make_cache: Factory,
) -> None:
    app, runs = build_slow(NodeCache(make_cache()))
    results = together(4, lambda: app.invoke({"x": 3}))
    assert results == [{"x": 3, "y": 6}] * 4
    assert runs == [3] * 4


# -- processes and packaging ----------------------------------------------------------------

PROCESS = textwrap.dedent(
    """
    import asyncio, json, sys
    from typing import TypedDict
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import CachePolicy
    from gencache.langgraph import NodeCache

    kind, where = sys.argv[1], sys.argv[2]
    if kind == "sqlite":
        from gencache import SQLiteCache
        backend = SQLiteCache(where)
    else:
        from gencache import RedisCache
        backend = RedisCache(where, namespace=sys.argv[3])

    class State(TypedDict, total=False):
        x: int
        y: int

    runs = []

    mode = sys.argv[-1]  # "sync": invoke, a plain node; "async": ainvoke, a coroutine node

    if mode == "async":
        async def double(state):
            await asyncio.sleep(0)
            runs.append(state["x"])
            return {"y": 2 * state["x"]}
    else:
        def double(state):
            runs.append(state["x"])
            return {"y": 2 * state["x"]}

    graph = StateGraph(State)
    graph.add_node("double", double, cache_policy=CachePolicy())
    graph.add_edge(START, "double")
    graph.add_edge("double", END)
    app = graph.compile(cache=NodeCache(backend))
    if mode == "async":
        result = asyncio.run(app.ainvoke({"x": 21}))
    else:
        result = app.invoke({"x": 21})
    print(json.dumps({"result": result, "runs": len(runs)}))
    """
)


# Not sync then async: LangGraph keys a sync and a coroutine node apart, with its own
# caches too (checked with langgraph.cache.memory.InMemoryCache, langgraph 1.2.24).
@pytest.mark.parametrize(
    ("first", "second"), [("sync", "sync"), ("async", "async")], ids=["sync", "async"]
)
@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_a_second_process_reads_the_node_result(
    tmp_path: Path, kind: str, first: str, second: str
) -> None:
    if kind == "sqlite":
        args = ["sqlite", str(tmp_path / "graph.sqlite3")]
    else:
        from tests.backends.redis import shared_server

        args = ["redis", shared_server().url, f"test-{uuid.uuid4().hex}"]

    def run(mode: str) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-c", PROCESS, *args, mode],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stderr
        report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return report

    assert run(first) == {"result": {"x": 21, "y": 42}, "runs": 1}
    assert run(second) == {"result": {"x": 21, "y": 42}, "runs": 0}


HIDDEN = textwrap.dedent(
    """
    import sys
    import gencache
    from gencache import InMemoryCache
    assert not any(m == "langgraph" or m.startswith("langgraph.") for m in sys.modules), "eager"

    class HideLangGraph:  # as if the [langgraph] extra were not installed
        def find_spec(self, name, path=None, target=None):
            if name == "langgraph" or name.startswith("langgraph."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, HideLangGraph())
    try:
        import gencache.langgraph
    except ImportError as exc:
        print("ImportError:", exc)
    """
)


def test_langgraph_is_imported_only_by_gencache_langgraph() -> None:
    done = subprocess.run(
        [sys.executable, "-c", HIDDEN], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'gencache[langgraph]'" in done.stdout
