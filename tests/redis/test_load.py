"""RedisCache under load on a real server: 8 threads and 500 asyncio tasks at once.

tests/redis/test_redis.py runs 8 threads (``test_8_threads_mixed_operations``) and 500
tasks (``test_500_concurrent_tasks``) each on its own, with one value per key. Here both
run at the same time against one cache object and a second, near-cached one on the same
namespace; every key is rewritten with many values (some of 64 KB, so replies span many
TCP segments), ``clear`` and ``len`` run meanwhile, and every call is recorded:

* no call raises;
* every hit is exactly a value some writer stored for that key (never another key's, never
  a torn or stale-protocol reply);
* each cache's ``stats()`` agree exactly with the hits, misses and updates callers saw.

:class:`Workload` is also what tests/redis/test_faults.py drives while it
kills and freezes the server. The full size (x10) is marked ``slow``: ``-m slow``.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, Generation

from gencache import GenCache
from gencache.errors import BackendUnavailableError
from gencache.redis import RedisCache
from tests.backends.redis import shared_server

pytestmark = pytest.mark.load

__all__ = ["LLM", "Call", "Workload", "latency_summary", "prompt", "value"]

LLM = "model='load' temperature=0"
THREADS, TASKS = 8, 500
# Operation weights: lookups dominate, as in an application.
OPS = {"lookup": 60, "update": 33, "len": 4, "clear": 1}


def prompt(key: int) -> str:
    return f"load prompt {key}"


def value(key: int, version: int) -> list[Generation]:
    """What a writer stores: key and version in every generation; every 10th is 64 KB."""
    tag = f"k{key} v{version}"
    pad = "x" * (65_536 if version % 10 == 9 else 0)
    return [
        Generation(text=tag + pad, generation_info={"key": key, "version": version}),
        ChatGeneration(message=AIMessage(content=tag, response_metadata={"key": key})),
    ]


@dataclass(frozen=True, slots=True)
class Call:
    """One call as its caller saw it."""

    cache: str
    kind: str  # "thread" or "task"
    op: str
    start: float
    seconds: float
    outcome: str  # "hit", "miss", "done", "wrong-hit", or the exception's class name
    error: Exception | None = None


class Workload:
    """Mixed calls from threads and tasks on named caches, every call recorded.

    Writers announce a version before writing it, so a reader may check that a hit is one
    of the announced values of its key. Runs a fixed number of operations per worker, or
    until :attr:`stop` is set.
    """

    def __init__(
        self,
        caches: dict[str, GenCache],
        keys: int = 48,
        thread_pause: float = 0.0,
        task_pause: float = 0.0,
    ) -> None:
        self.caches = caches
        self.keys = keys
        # Seconds between one worker's calls (0: as fast as it can, which saturates the CPU).
        self.thread_pause, self.task_pause = thread_pause, task_pause
        self.stop = threading.Event()
        self.calls: list[Call] = []
        self.wrong: list[str] = []
        self._announced: dict[int, set[int]] = defaultdict(set)
        self._lock = threading.Lock()
        self._names = list(OPS)
        self._weights = list(OPS.values())

    # -- bookkeeping ---------------------------------------------------------------------

    def _announce(self, key: int, version: int) -> None:
        with self._lock:
            self._announced[key].add(version)

    def _judge(self, key: int, hit: Sequence[Generation] | None) -> str:
        if hit is None:
            return "miss"
        info = hit[0].generation_info if hit else None
        version = info.get("version") if isinstance(info, dict) else None
        with self._lock:
            known = version in self._announced[key]
        expected = value(key, version if isinstance(version, int) else -1)
        if not known or not isinstance(hit, list) or hit != expected:  # as LangChain checks
            self.wrong.append(f"key {key}: {str(hit)[:200]}")
            return "wrong-hit"
        return "hit"

    def _record(
        self, name: str, kind: str, op: str, start: float, outcome: str, error: Exception | None
    ) -> None:
        call = Call(name, kind, op, start, time.monotonic() - start, outcome, error)
        with self._lock:
            self.calls.append(call)

    def _choose(self, rng: random.Random, worker: int, n: int) -> tuple[str, int, int]:
        op = rng.choices(self._names, self._weights)[0]
        return op, rng.randrange(self.keys), worker * 1_000_000 + n

    # -- workers ---------------------------------------------------------------------------

    def run_thread(self, name: str, worker: int, ops: int | None) -> None:
        cache, rng, n = self.caches[name], random.Random(worker), 0
        while (ops is None or n < ops) and not self.stop.is_set():
            op, key, version = self._choose(rng, worker, n)
            n += 1
            start, outcome, error = time.monotonic(), "done", None
            try:
                if op == "lookup":
                    outcome = self._judge(key, cache.lookup(prompt(key), LLM))
                elif op == "update":
                    self._announce(key, version)
                    cache.update(prompt(key), LLM, value(key, version))
                elif op == "len":
                    len(cache)
                else:
                    cache.clear()
            except Exception as exc:  # recorded: the tests assert on the types seen
                outcome, error = type(exc).__name__, exc
            self._record(name, "thread", op, start, outcome, error)
            if self.thread_pause:
                time.sleep(self.thread_pause)

    async def run_task(self, name: str, worker: int, ops: int | None) -> None:
        cache, rng, n = self.caches[name], random.Random(worker), 0
        while (ops is None or n < ops) and not self.stop.is_set():
            op, key, version = self._choose(rng, worker, n)
            n += 1
            start, outcome, error = time.monotonic(), "done", None
            try:
                if op == "lookup":
                    outcome = self._judge(key, await cache.alookup(prompt(key), LLM))
                elif op in ("update", "len"):  # len() has no async twin: write instead
                    self._announce(key, version)
                    await cache.aupdate(prompt(key), LLM, value(key, version))
                else:
                    await cache.aclear()
            except Exception as exc:  # recorded: the tests assert on the types seen
                outcome, error = type(exc).__name__, exc
            self._record(name, "task", "update" if op == "len" else op, start, outcome, error)
            await asyncio.sleep(self.task_pause)  # also lets the other tasks run

    def start_threads(self, names: list[str], ops: int | None) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self.run_thread, args=(name, i, ops), daemon=True)
            for i, name in enumerate(names)
        ]
        for thread in threads:
            thread.start()
        return threads

    def tasks(self, names: list[str], ops: int | None) -> list[asyncio.Task[None]]:
        return [
            asyncio.ensure_future(self.run_task(name, 1_000 + i, ops))
            for i, name in enumerate(names)
        ]

    # -- checks ----------------------------------------------------------------------------

    def select(self, **match: str) -> list[Call]:
        """The calls whose fields equal ``match`` (e.g. ``kind="task", op="lookup"``)."""
        return [c for c in self.calls if all(getattr(c, k) == v for k, v in match.items())]

    def outcomes(self, cache: str | None = None) -> Counter[str]:
        return Counter(c.outcome for c in self.calls if cache in (None, c.cache))

    def assert_stats_add_up(self) -> None:
        """Each cache's counters equal what its callers saw (updates: at most)."""
        for name, cache in self.caches.items():
            seen = self.outcomes(name)
            updates = sum(
                1 for c in self.calls if c.cache == name and c.op == "update" and c.error is None
            )
            stats = cache.stats()
            assert (stats.hits, stats.misses) == (seen["hit"], seen["miss"]), name
            assert stats.hits + stats.misses == seen["hit"] + seen["miss"]
            assert stats.updates <= updates, name


def latency_summary(calls: list[Call]) -> str:
    """``n``, p50, p99 and max of the calls' durations, in milliseconds."""
    if not calls:
        return "n=0"
    seconds = sorted(c.seconds for c in calls)

    def pick(q: float) -> float:
        return seconds[min(len(seconds) - 1, int(q * len(seconds)))] * 1000

    return (
        f"n={len(seconds)} p50={pick(0.5):.2f}ms p99={pick(0.99):.2f}ms "
        f"max={seconds[-1] * 1000:.1f}ms"
    )


@pytest.fixture
def caches() -> Iterator[dict[str, GenCache]]:
    """Three RedisCache objects on one fresh namespace: default, near-cached, strict."""
    url, namespace = shared_server().url, f"load-{uuid.uuid4().hex[:12]}"
    made = {
        "default": RedisCache(url, namespace=namespace),
        "near": RedisCache(url, namespace=namespace, near_cache=True),
        "strict": RedisCache(url, namespace=namespace, strict=True),
    }
    yield dict(made)
    made["default"].clear()
    for cache in made.values():
        cache.close()


async def _run(caches: dict[str, GenCache], scale: int) -> Workload:
    """Every worker calls as fast as it can: 2 cores saturated by 8 threads and 500 tasks."""
    work = Workload(caches)
    started = time.monotonic()
    threads = work.start_threads(["default"] * 3 + ["near"] * 2 + ["strict"] * 3, 300 * scale)
    await asyncio.gather(
        *work.tasks(["default"] * 200 + ["near"] * 100 + ["strict"] * 200, 8 * scale)
    )
    for thread in threads:
        await asyncio.to_thread(thread.join)
    elapsed = time.monotonic() - started

    assert len(work.calls) == (THREADS * 300 + TASKS * 8) * scale
    assert work.outcomes()["wrong-hit"] == 0, work.wrong[:3]
    # The default and near-cached caches never raise; a strict one raises only gencache's
    # BackendUnavailableError, when the saturated event loop makes a call wait longer
    # than the pool allows (2 x socket_timeout) or a connect time out.
    for call in work.calls:
        if call.cache != "strict":
            assert call.error is None, call
        elif call.error is not None:
            assert type(call.error) is BackendUnavailableError, call
            assert type(call.error.__cause__).__module__.startswith("redis"), call
    work.assert_stats_add_up()
    counts = work.outcomes()
    assert counts["hit"] > 0
    assert counts["miss"] > 0
    failed = Counter(f"{c.kind}:{str(c.error.__cause__)[:40]}" for c in work.calls if c.error)
    print(  # the figures of docs/_reliability_redis_security.md (pytest -s)
        f"\nFIGURES redis load x{scale}: {len(work.calls)} calls in {elapsed:.2f}s "
        f"({len(work.calls) / elapsed:,.0f}/s); {dict(counts)}; strict failures {dict(failed)}\n"
        + "".join(
            f"  {kind} {op}: {latency_summary(work.select(kind=kind, op=op))}\n"
            for kind in ("thread", "task")
            for op in ("lookup", "update", "clear")
        )
    )
    return work


async def test_threads_and_tasks_together(caches: dict[str, GenCache]) -> None:
    await _run(caches, 1)


@pytest.mark.slow
async def test_threads_and_tasks_together_x10(caches: dict[str, GenCache]) -> None:
    await _run(caches, 10)
