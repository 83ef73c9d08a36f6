"""Duplicate-heavy batches: provider calls and wall time, gencache vs LangChain's caches.

    python benchmarks/bench_flight.py [--redis URL]

A chat model with a simulated provider latency (100 ms) answers a ``batch()`` of 64
prompts drawn from 8 distinct questions, an ``abatch()`` of the same, and 64 concurrent
identical ``ainvoke`` calls, on an empty cache each time. Reported: provider calls and
wall time per workload and cache (the median of 3 repetitions). Not collected by pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langchain_core.caches import BaseCache
from langchain_core.caches import InMemoryCache as LangChainInMemoryCache

from _harness import environment
from gencache import InMemoryCache, RedisCache, SQLiteCache
from tests.chat_models import CountingChatModel

DELAY = 0.1
PROMPTS = [f"question {i % 8}" for i in range(64)]


def _workloads() -> dict[str, Callable[[CountingChatModel], Any]]:
    return {
        "batch(64 prompts, 8 distinct)": lambda m: m.batch(PROMPTS),
        "abatch(64 prompts, 8 distinct)": lambda m: asyncio.run(m.abatch(PROMPTS)),
        "gather(64 identical ainvoke)": lambda m: asyncio.run(_gather(m)),
    }


async def _gather(model: CountingChatModel) -> list[Any]:
    return await asyncio.gather(*(model.ainvoke("the same question") for _ in range(64)))


def _caches(redis_url: str | None) -> dict[str, Callable[[], BaseCache]]:
    root = Path(tempfile.mkdtemp(prefix="gencache-bench-"))
    counter = iter(range(10**6))
    caches: dict[str, Callable[[], BaseCache]] = {
        "LangChain InMemoryCache": LangChainInMemoryCache,
        "gencache InMemoryCache": InMemoryCache,
        "gencache InMemoryCache(single_flight=True)": lambda: InMemoryCache(single_flight=True),
        "gencache SQLiteCache(single_flight=True)": lambda: SQLiteCache(
            root / f"c{next(counter)}.sqlite3", single_flight=True
        ),
    }
    if redis_url:
        caches["gencache RedisCache(single_flight=True)"] = lambda: RedisCache(
            redis_url, namespace=f"bench-flight-{uuid.uuid4().hex}", single_flight=True
        )
    return caches


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", help="a Redis URL to include RedisCache")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"# Duplicate-heavy batches ({environment()}); provider latency {DELAY * 1000:.0f} ms\n")
    print("| workload | cache | provider calls | wall time (median) |")
    print("|---|---|---:|---:|")
    for workload, run in _workloads().items():
        for name, make in _caches(args.redis).items():
            calls, walls = [], []
            for _ in range(args.repeat):
                model = CountingChatModel(cache=make(), delay=DELAY)
                start = time.perf_counter()
                run(model)
                walls.append(time.perf_counter() - start)
                calls.append(model.calls)
            print(
                f"| {workload} | {name} | {statistics.median(calls):.0f} "
                f"({min(calls)}-{max(calls)}) | {statistics.median(walls) * 1000:.0f} ms |"
            )


if __name__ == "__main__":
    main()
