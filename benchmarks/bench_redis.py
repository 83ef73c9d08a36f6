"""gencache.redis.RedisCache vs langchain_community.cache.RedisCache, side by side.

Run: ``python benchmarks/bench_redis.py [--quick]``. Starts its own ``redis-server`` on a
free loopback port (no persistence), times every operation of both caches in the same
process with interleaved rounds, and prints a markdown table of the median, p90, p99 and
max latency per operation (µs) and the ratio ours / LangChain's (below 1 is faster).

Data: ~500-character prompts, a ~330-character llm_string, and either one ChatGeneration
whose AIMessage holds about 1 KB ("chat") or one plain Generation of 1,000 characters
("plain"). LangChain's cache uses database 1 (its ``clear`` is FLUSHDB), ours database 0
under a namespace. Both use the same redis-py, with ``hiredis`` when it is installed (the
header says which): it changes how both parse replies. Run it on gencache 0.1 with
``PYTHONPATH=<0.1 checkout>/src`` for before/after figures: the script uses only the API
both versions share.
"""

from __future__ import annotations

import argparse
import random
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import redis.client
from langchain_core.outputs import Generation
from redis.utils import HIREDIS_AVAILABLE

from _harness import LLM_STRING, environment, fresh, generation, prompt, run_threads
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


@contextmanager
def redis_server() -> Iterator[int]:
    """A throwaway redis-server on a free loopback port; yields the port."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix="gencache-bench-")
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(
        [binary, *args, "--dir", workdir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        probe = redis.client.Redis(port=port)
        for _ in range(500):
            try:
                probe.ping()
                break
            except redis.exceptions.ConnectionError:
                time.sleep(0.01)
        probe.close()
        yield port
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def timed(op: Callable[[], object], out: list[float]) -> None:
    start = time.perf_counter_ns()
    op()
    out.append((time.perf_counter_ns() - start) / 1_000)


def interleave(runs: dict[str, Callable[[list[float]], None]], rounds: int) -> Samples:
    """Alternate the contenders' rounds (reversing the order every other round)."""
    samples: Samples = {name: [] for name in runs}
    for r in range(rounds):
        order = list(runs.items())
        for name, run in reversed(order) if r % 2 else order:
            run(samples[name])
    return samples


def row(name: str, samples: Samples, note: str = "") -> str:
    def stats(values: list[float]) -> tuple[float, float, float, float]:
        cuts = statistics.quantiles(values, n=100)
        return statistics.median(values), cuts[89], cuts[98], max(values)

    lc, ours = stats(samples[LC]), stats(samples[OURS])
    return (
        f"| {name} | {' / '.join(f'{v:.0f}' for v in lc)} "
        f"| {' / '.join(f'{v:.1f}' if v < 10 else f'{v:.0f}' for v in ours)} "
        f"| {ours[0] / lc[0]:.2f}× / {ours[1] / lc[1]:.2f}× | {note} |"
    )


def bench_lookup(
    caches: dict[str, Any], rounds: int, n: int, *, hit: bool, values: Values = generation
) -> Samples:
    keys = [prompt(i) for i in range(1_000)]
    value = values(0)
    for cache in caches.values():
        for k in keys:
            cache.update(k, LLM_STRING, value)
    base = keys if hit else [k + "?" for k in keys]

    def runner(cache: Any) -> Callable[[list[float]], None]:
        def run(out: list[float]) -> None:
            picks = random.sample(range(len(base)), n)
            for i in picks:
                p, s = fresh(base[i]), fresh(LLM_STRING)
                timed(partial(cache.lookup, p, s), out)

        return run

    return interleave({name: runner(c) for name, c in caches.items()}, rounds)


def bench_update(caches: dict[str, Any], rounds: int, n: int, values: Values) -> Samples:
    counters = dict.fromkeys(caches, 10_000 if values is generation else 200_000)

    def runner(name: str) -> Callable[[list[float]], None]:
        cache = caches[name]

        def run(out: list[float]) -> None:
            start = counters[name]
            counters[name] += n
            for i in range(start, start + n):
                p, s, v = prompt(i), fresh(LLM_STRING), values(i)
                timed(partial(cache.update, p, s, v), out)

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
            out.append((time.perf_counter_ns() - start) / 1_000)

    def runner(cache: Any) -> Callable[[list[float]], None]:
        def run(out: list[float]) -> None:
            rngs = [random.Random(random.random()) for _ in range(threads)]
            plans = [[keys[rng.randrange(len(keys))] for _ in range(ops)] for rng in rngs]
            outs: list[list[float]] = [[] for _ in range(threads)]
            run_threads([partial(work, cache, p, o) for p, o in zip(plans, outs, strict=True)])
            for o in outs:
                out.extend(o)

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

    def runner(cache: Any) -> Callable[[list[float]], None]:
        def run(out: list[float]) -> None:
            for i in range(n):
                p, s = fresh(hot[i % len(hot)]), fresh(LLM_STRING)
                timed(partial(cache.lookup, p, s), out)

        return run

    samples = interleave({LC: runner(lc), OURS: runner(near), "memory": runner(memory)}, rounds)
    note = f"near_cache=True; gencache InMemoryCache: {statistics.median(samples['memory']):.1f}"
    return samples, note + " µs median"


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
        stale.append((time.perf_counter_ns() - start) / 1_000)
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
    near.close()
    cuts = statistics.quantiles(stale, n=100)
    return (
        f"near cache: another client's write seen after median {statistics.median(stale):.0f}"
        f" / p90 {cuts[89]:.0f} / p99 {cuts[98]:.0f} / max {max(stale):.0f} µs ({n} writes); "
        f"listener CPU per invalidation message: {cpu}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # LangChain's loads() warns on every lookup
    rounds, n = (5, 200) if args.quick else (15, 400)
    random.seed(42)
    with redis_server() as port:
        lc_client = redis.client.Redis(port=port, db=1)
        url = f"redis://127.0.0.1:{port}/0"
        caches = {LC: LangChainRedisCache(redis_=lc_client), OURS: RedisCache(url)}
        rows = [
            row(f"lookup hit, {kind}", bench_lookup(caches, rounds, n, hit=True, values=values))
            for kind, values in VALUES.items()
        ]
        rows.append(row("lookup miss", bench_lookup(caches, rounds, n, hit=False)))
        rows += [
            row(f"update (new key), {kind}", bench_update(caches, rounds, n, values))
            for kind, values in VALUES.items()
        ]
        rows += [
            row(
                "4 threads, read-through (lookup + update on miss)",
                bench_threads(caches, max(3, rounds // 3), n),
                "per operation, under contention",
            ),
        ]
        near = RedisCache(url, namespace="gencache-near", near_cache=True)
        samples, note = bench_repeated_hits(caches[LC], near, rounds, n)
        rows.append(row("lookup hit, 20 hot prompts repeated", samples, note))
        near.close()
        invalidation = bench_invalidation(url, 10 * n)
        caches[OURS].clear()
        lc_client.flushdb()
        lc_client.close()
    parser_name = "hiredis" if HIREDIS_AVAILABLE else "pure-Python parser"
    print(
        f"RedisCache benchmark — {environment()}, redis-server on loopback, "
        f"redis-py {redis.__version__} ({parser_name}) for both caches\n"
    )
    head = "(median / p90 / p99 / max µs)"
    print(f"| workload | {LC} {head} | {OURS} {head} | ratio (median / p90) | note |")
    print("|---|---:|---:|---:|---|")
    print("\n".join(rows))
    print(f"\n{invalidation}")


if __name__ == "__main__":
    main()
