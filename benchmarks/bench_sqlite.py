"""gencache.sqlite.SQLiteCache vs langchain_community.cache.SQLiteCache, side by side.

Run: ``python benchmarks/bench_sqlite.py [--quick] [--rounds N] [--json PATH]``. Both
caches use a fresh file in a temporary directory of the same file system and the same
data (a ~500-character prompt, the ~330-character llm_string, one ``ChatGeneration`` of
about 1 KB). Every operation is
timed on its own; rounds alternate between the contenders so that machine drift hits
both alike. Prints the harness's markdown table of the median, p90, p99 and max per
operation with the ratio ours / LangChain's (below 1 is faster), and the throughput of
several processes sharing our file.
"""

from __future__ import annotations

import multiprocessing
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
import warnings
from functools import partial
from pathlib import Path
from typing import Any

from _harness import (
    LLM_STRING,
    Round,
    Row,
    arguments,
    environment,
    fresh,
    generation,
    interleave,
    prompt,
    report,
    rounds,
    run_threads,
    timed,
)
from gencache.sqlite import SQLiteCache

warnings.filterwarnings("ignore")  # langchain_community's deprecation notices, per call
from langchain_community.cache import SQLiteCache as LangChainSQLiteCache  # noqa: E402

LC, OURS = "LangChain", "gencache"
KEYS = 1_000  # entries present before the lookup and mixed workloads
VALUE = generation(0)


class Contenders:
    """One cache of each kind on its own file, prefilled with ``KEYS`` entries."""

    def __init__(self, root: Path) -> None:
        self.prompts = [prompt(i) for i in range(KEYS)]
        self.caches: dict[str, Any] = {
            LC: LangChainSQLiteCache(database_path=str(root / "langchain.db")),
            OURS: SQLiteCache(root / "gencache.sqlite3"),
        }
        for cache in self.caches.values():
            for p in self.prompts:
                cache.update(p, LLM_STRING, VALUE)


def bench_lookup(c: Contenders, rounds: int, n: int, *, hit: bool) -> Row:
    rng = random.Random(1)

    def runner(cache: Any) -> Round:
        def run() -> list[float]:
            picks = [fresh(rng.choice(c.prompts) + ("" if hit else "?")) for _ in range(n)]
            return [timed(cache.lookup, p, fresh(LLM_STRING)) for p in picks]

        return run

    samples = interleave({name: runner(cache) for name, cache in c.caches.items()}, rounds)
    return Row(f"lookup {'hit' if hit else 'miss'}", "ns", samples)


def bench_update(c: Contenders, rounds: int, n: int) -> Row:
    counter = dict.fromkeys(c.caches, KEYS)

    def runner(name: str) -> Round:
        cache = c.caches[name]

        def run() -> list[float]:
            start = counter[name]
            counter[name] += n
            keys = [(prompt(i), fresh(LLM_STRING)) for i in range(start, start + n)]
            return [timed(cache.update, p, s, VALUE) for p, s in keys]

        return run

    samples = interleave({name: runner(name) for name in c.caches}, rounds)
    return Row("update (new key)", "ns", samples)


def bench_threads(c: Contenders, rounds: int, n: int, threads: int = 4) -> Row:
    """Each thread: 80 % lookups of present keys, 20 % re-updates; per-op latency."""
    errors = dict.fromkeys(c.caches, 0)
    rates: dict[str, list[float]] = {name: [] for name in c.caches}

    def work(name: str, plan: list[tuple[bool, str]], out: list[float]) -> None:
        cache = c.caches[name]
        for read, p in plan:
            try:
                if read:
                    out.append(timed(cache.lookup, p, LLM_STRING))
                else:
                    out.append(timed(cache.update, p, LLM_STRING, VALUE))
            except Exception:
                errors[name] += 1

    def runner(name: str) -> Round:
        def run() -> list[float]:
            rngs = [random.Random(t) for t in range(threads)]
            plans = [
                [(rng.random() < 0.8, rng.choice(c.prompts)) for _ in range(n)] for rng in rngs
            ]
            out: list[list[float]] = [[] for _ in range(threads)]
            jobs = [partial(work, name, p, o) for p, o in zip(plans, out, strict=True)]
            elapsed = run_threads(jobs)
            rates[name].append(threads * n / (elapsed / 1e9))
            return [x for xs in out for x in xs]

        return run

    samples = interleave({name: runner(name) for name in c.caches}, rounds)
    note = ", ".join(
        f"{name} {statistics.median(rates[name]):,.0f} ops/s, {errors[name]} errors"
        for name in c.caches
    )
    return Row(f"{threads} threads, 80 % lookup / 20 % update", "ns", samples, note)


def bench_ours_only(root: Path, rounds: int, n: int) -> list[Row]:
    """Our options LangChain lacks: LRU hits, and updates that evict (maxsize 1,000)."""
    lru = SQLiteCache(root / "lru.sqlite3", policy="lru", maxsize=2 * KEYS)
    bounded = SQLiteCache(root / "bounded.sqlite3", maxsize=KEYS)
    prompts = [prompt(i) for i in range(KEYS)]
    for p in prompts:
        lru.update(p, LLM_STRING, VALUE)
        bounded.update(p, LLM_STRING, VALUE)
    rng = random.Random(2)
    hits: list[float] = []
    evicting: list[float] = []
    for r in range(rounds):
        picks = [fresh(rng.choice(prompts)) for _ in range(n)]
        hits += [timed(lru.lookup, p, LLM_STRING) for p in picks]
        new = [prompt(KEYS * (r + 2) + i) for i in range(n)]
        evicting += [timed(bounded.update, p, LLM_STRING, VALUE) for p in new]
    assert len(bounded) == KEYS
    lru.close()
    bounded.close()
    return [
        Row("lookup hit, LRU (hits written in batches)", "ns", {OURS: hits}),
        Row("update with eviction (maxsize 1,000)", "ns", {OURS: evicting}),
    ]


def _process(path: str, seed: int, ops: int, barrier: Any, results: Any) -> None:
    cache = SQLiteCache(path)
    rng = random.Random(seed)
    prompts = [prompt(i) for i in range(KEYS)]
    plan = [(rng.random() < 0.8, rng.choice(prompts)) for _ in range(ops)]
    barrier.wait()
    start = time.perf_counter()  # CLOCK_MONOTONIC: comparable across processes
    for read, p in plan:
        if read:
            cache.lookup(p, LLM_STRING)
        else:
            cache.update(p, LLM_STRING, VALUE)
    results.put((start, time.perf_counter()))
    cache.close()


def bench_processes(
    root: Path, counts: tuple[int, ...], ops: int, repeats: int = 3
) -> list[tuple[int, float]]:
    """Total ops/s of ``n`` processes sharing one file (80 % lookups, 20 % updates).

    Each count runs ``repeats`` times, alternating with the others; the median is kept.
    """
    path = root / "processes.sqlite3"
    with SQLiteCache(path) as cache:
        for i in range(KEYS):
            cache.update(prompt(i), LLM_STRING, VALUE)
    ctx = multiprocessing.get_context("spawn")
    rates: dict[int, list[float]] = {n: [] for n in counts}
    for _ in range(repeats):
        for n in counts:
            barrier, results = ctx.Barrier(n), ctx.Queue()
            procs = [
                ctx.Process(target=_process, args=(str(path), s, ops, barrier, results))
                for s in range(n)
            ]
            for proc in procs:
                proc.start()
            spans = [results.get(timeout=120) for _ in procs]
            for proc in procs:
                proc.join()
            wall = max(end for _, end in spans) - min(start for start, _ in spans)
            rates[n].append(n * ops / wall)
    return [(n, statistics.median(rates[n])) for n in counts]


def main() -> None:
    args = arguments(__doc__, "fewer rounds, fewer operations per process").parse_args()
    q = args.quick
    n_rounds = rounds(args, 4, 16)
    root = Path(tempfile.mkdtemp(prefix="gencache-bench-"))
    try:
        c = Contenders(root)
        rows = [
            bench_lookup(c, n_rounds, 200, hit=True),
            bench_lookup(c, n_rounds, 200, hit=False),
            bench_update(c, n_rounds, 30 if q else 60),
            bench_threads(c, max(2, n_rounds // 2), 100 if q else 300),
        ]
        rows += bench_ours_only(root, n_rounds, 200)
        processes = bench_processes(root, (1, 2, 4), 1_000 if q else 4_000, 1 if q else 3)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(
        f"SQLiteCache benchmark — {environment()}, SQLite {sqlite3.sqlite_version}",
        [(rows, LC, OURS)],
        args.json,
        {"processes": {str(n): rate for n, rate in processes}},
    )
    print(f"\n{OURS} SQLiteCache, processes sharing one file (80 % lookup / 20 % update):\n")
    print("| processes | total ops/s | ops/s per process |\n|---:|---:|---:|")
    for n, rate in processes:
        print(f"| {n} | {rate:,.0f} | {rate / n:,.0f} |")


if __name__ == "__main__":
    main()
