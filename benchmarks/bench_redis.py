"""gencache.redis.RedisCache vs langchain_community.cache.RedisCache, side by side.

Run: ``python benchmarks/bench_redis.py [--quick] [--rounds N] [--json PATH]``. Starts its
own ``redis-server`` on a free loopback port (no persistence), times every operation of
both caches in the same process with interleaved rounds, and prints the harness's
markdown table of the median, p90, p99 and max latency per operation and the ratio
ours / LangChain's (below 1 is faster).

Data: ~500-character prompts, a ~330-character llm_string, and either one ChatGeneration
whose AIMessage holds about 1 KB ("chat") or one plain Generation of 1,000 characters
("plain"). LangChain's cache uses database 1 (its ``clear`` is FLUSHDB), ours database 0
under a namespace. Both use the same redis-py, with ``hiredis`` when it is installed (the
header says which): it changes how both parse replies. Run it on gencache 0.1 with
``PYTHONPATH=<0.1 checkout>/src`` for before/after figures: the script uses only the API
both versions share.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

import redis.client
from langchain_core.outputs import Generation
from redis.utils import HIREDIS_AVAILABLE

from _harness import (
    LLM_STRING,
    Round,
    Row,
    Stats,
    arguments,
    environment,
    fresh,
    generation,
    interleave,
    prompt,
    redis_server,
    report,
    rounds,
    run_threads,
    timed,
)
from gencache import InMemoryCache
from gencache.redis import RedisCache

with warnings.catch_warnings():  # langchain-community announces its own sunset
    warnings.simplefilter("ignore")
    from langchain_community.cache import RedisCache as LangChainRedisCache

LC, OURS = "LangChain RedisCache", "gencache RedisCache"
Samples = dict[str, list[float]]
Values = Callable[[int], list[Generation]]


def plain(i: int) -> list[Generation]:
    """One plain ``Generation`` of 1,000 characters, as a completion model returns it."""
    return [Generation(text=(f"Answer {i}. " + "The export job fails at night. " * 40)[:1000])]


VALUES: dict[str, Values] = {"chat": generation, "plain": plain}


def bench_lookup(
    caches: dict[str, Any], rounds: int, n: int, *, hit: bool, values: Values = generation
) -> Samples:
    keys = [prompt(i) for i in range(1_000)]
    value = values(0)
    for cache in caches.values():
        for k in keys:
            cache.update(k, LLM_STRING, value)
    base = keys if hit else [k + "?" for k in keys]

    def runner(cache: Any) -> Round:
        def run() -> list[float]:
            picks = random.sample(range(len(base)), n)
            return [timed(cache.lookup, fresh(base[i]), fresh(LLM_STRING)) for i in picks]

        return run

    return interleave({name: runner(c) for name, c in caches.items()}, rounds)


def bench_update(caches: dict[str, Any], rounds: int, n: int, values: Values) -> Samples:
    counters = dict.fromkeys(caches, 10_000 if values is generation else 200_000)

    def runner(name: str) -> Round:
        cache = caches[name]

        def run() -> list[float]:
            start = counters[name]
            counters[name] += n
            args = [(prompt(i), fresh(LLM_STRING), values(i)) for i in range(start, start + n)]
            return [timed(cache.update, p, s, v) for p, s, v in args]

        return run

    return interleave({name: runner(name) for name in caches}, rounds)


def bench_threads(caches: dict[str, Any], rounds: int, ops: int, threads: int = 4) -> Samples:
    """Read-through (lookup, update on a miss) from 4 threads over 2,000 keys."""
    keys = [prompt(50_000 + i) for i in range(2_000)]
    value = generation(1)

    def work(cache: Any, picks: list[str], out: list[float]) -> None:
        for k in picks:
            start = time.perf_counter_ns()
            if cache.lookup(k, LLM_STRING) is None:
                cache.update(k, LLM_STRING, value)
            out.append(float(time.perf_counter_ns() - start))

    def runner(cache: Any) -> Round:
        def run() -> list[float]:
            rngs = [random.Random(random.random()) for _ in range(threads)]
            plans = [[keys[rng.randrange(len(keys))] for _ in range(ops)] for rng in rngs]
            outs: list[list[float]] = [[] for _ in range(threads)]
            jobs = [partial(work, cache, p, o) for p, o in zip(plans, outs, strict=True)]
            run_threads(jobs)
            return [x for o in outs for x in o]

        return run

    return interleave({name: runner(c) for name, c in caches.items()}, rounds)


def bench_repeated_hits(lc: Any, near: RedisCache, rounds: int, n: int) -> tuple[Samples, str]:
    """A few hot prompts asked again and again: the near cache answers in-process."""
    hot = [prompt(90_000 + i) for i in range(20)]
    value = generation(2)
    memory = InMemoryCache()
    for cache in (lc, near, memory):
        for k in hot:
            cache.update(k, LLM_STRING, value)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # until the near cache is subscribed and warm
        for k in hot:
            near.lookup(k, LLM_STRING)
        start = time.perf_counter_ns()
        near.lookup(hot[0], LLM_STRING)
        if time.perf_counter_ns() - start < 10_000:
            break

    def runner(cache: Any) -> Round:
        def run() -> list[float]:
            picks = [(fresh(hot[i % len(hot)]), fresh(LLM_STRING)) for i in range(n)]
            return [timed(cache.lookup, p, s) for p, s in picks]

        return run

    samples = interleave({LC: runner(lc), OURS: runner(near), "memory": runner(memory)}, rounds)
    in_process = samples.pop("memory")
    note = f"near_cache=True; gencache InMemoryCache: {statistics.median(in_process):.0f} ns median"
    return samples, note


def bench_invalidation(url: str, n: int) -> str:
    """How soon a near cache sees another client's write, and its listener's CPU per message.

    Staleness: from just before another cache's ``update`` until the near cache's lookup
    returns the new value (the write's round trip, the invalidation message, one ``GET``).
    CPU: the listener thread's CPU time for 20,000 writes to the namespace (pipelined by
    a plain client), up to the message of a last write that the near cache is seen to
    have applied (messages arrive in order).
    """
    namespace = f"gencache-inval-{random.randrange(1 << 30)}"
    near = RedisCache(url, namespace=namespace, near_cache=True)
    other = RedisCache(url, namespace=namespace)
    key = prompt(95_000)

    def seen(version: int, budget: float = 5.0) -> None:
        deadline = time.monotonic() + budget
        while near.lookup(key, LLM_STRING) != values[version]:
            if time.monotonic() > deadline:
                raise SystemExit("the near cache never saw a write")

    values = [plain(i) for i in range(n + 2)]
    other.update(key, LLM_STRING, values[0])
    seen(0)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # until the listener is live and the entry is local
        start = time.perf_counter_ns()
        near.lookup(key, LLM_STRING)
        if time.perf_counter_ns() - start < 10_000:
            break
    stale: list[float] = []
    for i in range(1, n + 1):
        start = time.perf_counter_ns()
        other.update(key, LLM_STRING, values[i])
        seen(i)
        stale.append(float(time.perf_counter_ns() - start))
        near.lookup(key, LLM_STRING)  # make it local again
    listener = [t for t in threading.enumerate() if t.name == "gencache-redis-near"]
    cpu = "n/a"
    if listener and hasattr(time, "pthread_getcpuclockid") and listener[-1].ident:
        clock = time.pthread_getcpuclockid(listener[-1].ident)
        raw = redis.client.Redis.from_url(url)
        before = time.clock_gettime(clock)
        with raw.pipeline(transaction=False) as pipe:
            for i in range(20_000):
                pipe.set(f"{namespace}:_:{i:064x}", b"x")
            pipe.execute()
        other.update(key, LLM_STRING, values[n + 1])
        seen(n + 1, 30.0)
        cpu = f"{(time.clock_gettime(clock) - before) / 20_001 * 1e6:.1f} µs"
        raw.close()
    other.clear()
    for cache in (near, other):  # write batched savings while the server is up
        cache.flush()
        cache.close()
    s = Stats.of([x / 1_000 for x in stale])
    return (
        f"near cache: another client's write seen after median {s.median:.0f} / p90 "
        f"{s.p90:.0f} / p99 {s.p99:.0f} / max {s.max:.0f} µs ({n} writes); "
        f"listener CPU per invalidation message: {cpu}"
    )


def main() -> None:
    args = arguments(__doc__, "fewer rounds and operations").parse_args()
    warnings.simplefilter("ignore")  # LangChain's loads() warns on every lookup
    n_rounds, n = rounds(args, 5, 15), 200 if args.quick else 400
    random.seed(42)
    with redis_server() as port:
        lc_client = redis.client.Redis(port=port, db=1)
        url = f"redis://127.0.0.1:{port}/0"
        ours = RedisCache(url)
        caches = {LC: LangChainRedisCache(redis_=lc_client), OURS: ours}
        rows = [
            Row(
                f"lookup hit, {kind}",
                "ns",
                bench_lookup(caches, n_rounds, n, hit=True, values=values),
            )
            for kind, values in VALUES.items()
        ]
        rows.append(Row("lookup miss", "ns", bench_lookup(caches, n_rounds, n, hit=False)))
        rows += [
            Row(f"update (new key), {kind}", "ns", bench_update(caches, n_rounds, n, values))
            for kind, values in VALUES.items()
        ]
        rows.append(
            Row(
                "4 threads, read-through (lookup + update on miss)",
                "ns",
                bench_threads(caches, max(3, n_rounds // 3), n),
                "per operation, under contention",
            )
        )
        near = RedisCache(url, namespace="gencache-near", near_cache=True)
        samples, note = bench_repeated_hits(caches[LC], near, n_rounds, n)
        rows.append(Row("lookup hit, 20 hot prompts repeated", "ns", samples, note))
        near.flush()
        near.close()
        invalidation = bench_invalidation(url, 10 * n)
        ours.flush()  # while the server is up: nothing left to write at exit
        ours.clear()
        ours.close()
        lc_client.flushdb()
        lc_client.close()
    parser_name = "hiredis" if HIREDIS_AVAILABLE else "pure-Python parser"
    report(
        f"RedisCache benchmark — {environment()}, redis-server on loopback, "
        f"redis-py {redis.__version__} ({parser_name}) for both caches",
        [(rows, LC, OURS)],
        args.json,
        {"invalidation": invalidation},
    )
    print(f"\n{invalidation}")


if __name__ == "__main__":
    main()
