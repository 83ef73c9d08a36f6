"""Single-flight: what it costs when nothing is contended, and what it saves when much is.

Run: ``python benchmarks/bench_flight.py [--quick] [--rounds N] [--json PATH] [--no-redis]``.
Starts its own ``redis-server`` on a free loopback port (unless ``--no-redis``).

1. **Cost, uncontended** (the harness's table, per backend): the same cache built with
   ``single_flight=False`` (the baseline) and ``single_flight=True``, timed in interleaved
   rounds on distinct keys: a miss followed by the update of that key (a flight is opened
   at the miss and landed at the update), and a hit. In memory the pair is timed in
   batches of 500; on SQLite and Redis each pair on its own.
2. **Savings, duplicate-heavy**: a chat model with a simulated provider latency (100 ms)
   answers a ``batch()`` of 64 prompts drawn from 8 distinct questions, an ``abatch()`` of
   the same, and 64 concurrent identical ``ainvoke`` calls, on an empty cache each time,
   with LangChain's in-memory, SQLite and Redis caches and with gencache's. Reported:
   provider calls and wall time (the median of the repetitions).

Not collected by pytest.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langchain_core.caches import BaseCache
from langchain_core.caches import InMemoryCache as LangChainInMemoryCache

from _harness import (
    LLM_STRING,
    Round,
    Row,
    arguments,
    batched,
    environment,
    fresh,
    generation,
    interleave,
    prompt,
    redis_server,
    report,
    rounds,
    timed,
)
from gencache import InMemoryCache, RedisCache, SQLiteCache
from tests.chat_models import CountingChatModel

with warnings.catch_warnings():  # langchain-community announces its own sunset
    warnings.simplefilter("ignore")
    from langchain_community.cache import RedisCache as LangChainRedisCache
    from langchain_community.cache import SQLiteCache as LangChainSQLiteCache

OFF, ON = "single_flight=False", "single_flight=True"
DELAY = 0.1
PROMPTS = [f"question {i % 8}" for i in range(64)]
Factory = Callable[..., Any]


# -- 1. what single-flight costs when nothing is contended ---------------------------------


def _pairs(n: int, tag: str) -> list[tuple[str, str]]:
    return [(fresh(prompt(i) + tag), fresh(LLM_STRING)) for i in range(n)]


def _sample(
    op: Callable[[str, str], object], pairs: list[tuple[str, str]], batch: int
) -> list[float]:
    """``op`` on each pair: per-operation ns, as the mean of batches of ``batch`` if > 1."""
    if batch > 1:

        def loop(chunk: Sequence[tuple[str, str]]) -> None:
            for p, s in chunk:
                op(p, s)

        return batched(loop, pairs, batch)
    return [timed(op, p, s) for p, s in pairs]


def bench_cost(backend: str, make: Factory, rounds: int, n: int, batch: int) -> list[Row]:
    """Miss + update, and hit, with single-flight off and on, on one backend."""
    value = generation(0)
    caches = {OFF: make(single_flight=False), ON: make(single_flight=True)}
    counter = iter(range(10**9))

    def miss_then_update(cache: Any) -> Round:
        def pair(p: str, s: str) -> None:
            cache.lookup(p, s)
            cache.update(p, s, value)

        return lambda: _sample(pair, _pairs(n, f"|round {next(counter)}"), batch)

    stored = _pairs(n, "|stored")
    for cache in caches.values():
        for p, s in stored:
            cache.update(p, s, value)

    def hit(cache: Any) -> Round:
        return lambda: _sample(cache.lookup, [(fresh(p), fresh(s)) for p, s in stored], batch)

    rows = [
        Row(
            f"{backend}: miss + update, new key",
            "ns",
            interleave({name: miss_then_update(c) for name, c in caches.items()}, rounds),
        ),
        Row(
            f"{backend}: lookup hit",
            "ns",
            interleave({name: hit(c) for name, c in caches.items()}, rounds),
        ),
    ]
    for cache in caches.values():
        cache.clear()
        if callable(close := getattr(cache, "close", None)):
            close()
    return rows


# -- 2. what single-flight saves on duplicate-heavy work -----------------------------------


def _workloads() -> dict[str, Callable[[CountingChatModel], Any]]:
    return {
        "batch(64 prompts, 8 distinct)": lambda m: m.batch(PROMPTS),
        "abatch(64 prompts, 8 distinct)": lambda m: asyncio.run(m.abatch(PROMPTS)),
        "gather(64 identical ainvoke)": lambda m: asyncio.run(_gather(m)),
    }


async def _gather(model: CountingChatModel) -> list[Any]:
    return await asyncio.gather(*(model.ainvoke("the same question") for _ in range(64)))


def _caches(root: Path, redis_port: int | None) -> dict[str, Callable[[], BaseCache]]:
    def path(suffix: str) -> str:  # a new file for every run
        return str(root / f"{uuid.uuid4().hex}.{suffix}")

    caches: dict[str, Callable[[], BaseCache]] = {
        "LangChain InMemoryCache": LangChainInMemoryCache,
        "LangChain SQLiteCache": lambda: LangChainSQLiteCache(database_path=path("db")),
        "gencache InMemoryCache": InMemoryCache,
        "gencache InMemoryCache(single_flight=True)": lambda: InMemoryCache(single_flight=True),
        "gencache SQLiteCache(single_flight=True)": lambda: SQLiteCache(
            path("sqlite3"), single_flight=True
        ),
    }
    if redis_port is not None:
        import redis

        def langchain_redis() -> BaseCache:
            client = redis.Redis(port=redis_port, db=1)
            client.flushdb()  # LangChain's RedisCache has no namespace: a database of its own
            return LangChainRedisCache(redis_=client)

        caches["LangChain RedisCache"] = langchain_redis
        caches["gencache RedisCache(single_flight=True)"] = lambda: RedisCache(
            f"redis://127.0.0.1:{redis_port}/0",
            namespace=f"bench-flight-{uuid.uuid4().hex}",
            single_flight=True,
        )
    return caches


def bench_savings(root: Path, redis_port: int | None, repeat: int) -> list[str]:
    lines = [
        f"Duplicate-heavy batches; provider latency {DELAY * 1000:.0f} ms, median of {repeat}\n",
        "| workload | cache | provider calls (min-max) | wall time (median) | calls that raised |",
        "|---|---|---:|---:|---|",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # langchain-community's per-call deprecation notices
        for workload, run in _workloads().items():
            for name, make in _caches(root, redis_port).items():
                calls, walls, raised = [], [], []
                for _ in range(repeat):
                    cache = make()
                    model = CountingChatModel(cache=cache, delay=DELAY)
                    start = time.perf_counter()
                    try:
                        run(model)
                    except Exception as exc:  # reported, as a user would see it
                        raised.append(type(exc).__name__)
                    walls.append(time.perf_counter() - start)
                    calls.append(model.calls)
                    close = getattr(cache, "close", None)
                    if callable(close):
                        close()
                failed = f"{len(raised)} of {repeat} runs: {raised[0]}" if raised else ""
                lines.append(
                    f"| {workload} | {name} | {statistics.median(calls):.0f} "
                    f"({min(calls)}-{max(calls)}) | {statistics.median(walls) * 1000:.0f} ms "
                    f"| {failed} |"
                )
    return lines


@contextmanager
def _redis(enabled: bool) -> Iterator[int | None]:
    if not enabled:
        yield None
        return
    with redis_server() as port:
        yield port


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--no-redis", action="store_true", help="leave RedisCache out")
    args = parser.parse_args()
    n_rounds = rounds(args, 5, 9)
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gencache-bench-")))
        port = stack.enter_context(_redis(not args.no_redis))
        n = 2_000 if args.quick else 5_000
        rows = bench_cost("memory", InMemoryCache, n_rounds, n * 4, 500)
        files = iter(range(10**6))
        rows += bench_cost(
            "SQLite",
            lambda **o: SQLiteCache(root / f"cost{next(files)}.sqlite3", **o),
            n_rounds,
            n // 10,
            1,
        )
        if port is not None:
            rows += bench_cost(
                "Redis",
                lambda **o: RedisCache(
                    f"redis://127.0.0.1:{port}/0", namespace=f"cost-{uuid.uuid4().hex}", **o
                ),
                n_rounds,
                n // 10,
                1,
            )
        report(
            f"Single-flight benchmark — {environment()}\n\n1. Cost when nothing is contended",
            [(rows, OFF, ON)],
            args.json,
        )
        print("\n2. " + "\n".join(bench_savings(root, port, 1 if args.quick else 3)))


if __name__ == "__main__":
    main()
