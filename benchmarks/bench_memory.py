"""gencache.InMemoryCache vs langchain_core.caches.InMemoryCache, side by side.

Run: ``python benchmarks/bench_memory.py [--quick]``. Prints a markdown table of medians
over interleaved rounds and the ratio ours / LangChain's (below 1 is faster/smaller).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import time
import tracemalloc
from collections.abc import Callable
from functools import partial
from typing import Any

from langchain_core.caches import InMemoryCache as LangChainCache
from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import Generation

from _harness import (
    LLM_STRING,
    Result,
    environment,
    fresh,
    generation,
    interleave,
    per_op_ns,
    prompt,
    run_threads,
    table,
)
from gencache import InMemoryCache

LC, OURS = "LangChain", "gencache"
Factory = Callable[..., Any]
CONTENDERS: dict[str, Factory] = {LC: LangChainCache, OURS: InMemoryCache}


def bench_lookup(rounds: int, n: int, hit: bool) -> Result:
    keys = [prompt(i) for i in range(1_000)]
    value = generation(0)
    caches = {name: make() for name, make in CONTENDERS.items()}
    for cache in caches.values():
        for k in keys:
            cache.update(k, LLM_STRING, value)

    def runner(cache: Any) -> Callable[[], float]:
        def run() -> float:
            base = keys if hit else [k + "?" for k in keys]
            ps = [fresh(base[i % len(base)]) for i in range(n)]
            ls = [fresh(LLM_STRING) for _ in range(n)]
            lookup = cache.lookup

            def loop() -> None:
                for p, s in zip(ps, ls, strict=True):
                    lookup(p, s)

            return per_op_ns(loop, n)

        return run

    medians = interleave({name: runner(c) for name, c in caches.items()}, rounds)
    return Result(f"lookup {'hit' if hit else 'miss'} (fresh equal strings)", "ns", medians)


def bench_update(rounds: int, n: int) -> Result:
    value = generation(0)
    ps = [prompt(i) for i in range(n)]

    def runner(make: Factory) -> Callable[[], float]:
        def run() -> float:
            cache = make()
            ls = [fresh(LLM_STRING) for _ in range(n)]
            keys = [fresh(p) for p in ps]

            def loop() -> None:
                for p, s in zip(keys, ls, strict=True):
                    cache.update(p, s, value)

            return per_op_ns(loop, n)

        return run

    medians = interleave({name: runner(m) for name, m in CONTENDERS.items()}, rounds)
    return Result("update, new key, unbounded", "ns", medians)


def _evicting_key(i: int) -> str:
    return f"short prompt {i}"


def bench_eviction(maxsize: int, rounds: int, n: int) -> Result:
    """Update with eviction, timed over the first ``rounds * n`` updates after filling."""
    value = generation(0)
    caches: dict[str, Any] = {}
    counters: dict[str, int] = {}
    for name, make in CONTENDERS.items():
        cache = make(maxsize=maxsize)
        for i in range(maxsize):
            cache.update(_evicting_key(i), "llm", value)
        caches[name], counters[name] = cache, maxsize

    def runner(name: str) -> Callable[[], float]:
        def run() -> float:
            cache, start = caches[name], counters[name]
            keys = [_evicting_key(i) for i in range(start, start + n)]
            counters[name] = start + n

            def loop() -> None:
                for k in keys:
                    cache.update(k, "llm", value)

            return per_op_ns(loop, n)

        return run

    medians = interleave({name: runner(name) for name in caches}, rounds)
    caches.clear()
    gc.collect()
    return Result(
        f"update with eviction, maxsize={maxsize:,}: just filled",
        "ns",
        medians,
        note=f"first {rounds * n:,} updates after filling",
    )


def bench_eviction_long_run(maxsize: int, windows: int = 80, span: int = 20) -> Result:
    """Update with eviction, averaged over a long run: ``span * maxsize`` updates.

    LangChain's class evicts with ``del d[next(iter(d))]``: each deletion leaves a dead
    slot at the front of the dict that every later ``next(iter(d))`` steps over, until
    the dict compacts itself on a resize. Its cost therefore climbs through a cycle of
    1-2.5 x maxsize updates and drops back, and the first updates after filling are the
    cheapest. A cache that runs for hours pays the cycle's mean: this measures it by
    timing ``windows`` evenly spaced windows over ``span`` x maxsize updates (several
    cycles), after a warm-up of 5 x maxsize updates.

    Between windows, LangChain's cache is moved forward by doing exactly what its
    ``update`` does (delete the oldest key, insert the new one) without searching for
    the oldest key, which we know; the dict goes through the same states, so the timed
    windows see what a long-running cache sees, and the run takes seconds, not hours.
    Our cache is moved forward through its public ``update``.
    """
    value = generation(0)
    spacing = span * maxsize // windows
    window = min(1_000 if maxsize <= 100_000 else 200, spacing // 2)
    warmup = 5 * maxsize

    def forward(name: str, cache: Any, start: int, count: int) -> None:
        if name == LC:
            table = cache._cache  # private: see the docstring
            for i in range(start, start + count):
                del table[_evicting_key(i - maxsize), "llm"]
                table[_evicting_key(i), "llm"] = value
            assert next(iter(table)) == (_evicting_key(start + count - maxsize), "llm")
        else:
            update = cache.update
            for i in range(start, start + count):
                update(_evicting_key(i), "llm", value)

    caches = {name: make(maxsize=maxsize) for name, make in CONTENDERS.items()}
    for name, cache in caches.items():
        for i in range(maxsize):
            cache.update(_evicting_key(i), "llm", value)
        forward(name, cache, maxsize, warmup)
    elapsed = dict.fromkeys(caches, 0)
    position = maxsize + warmup
    for w in range(windows):  # the contenders take turns, so that drift hits both
        keys = [_evicting_key(i) for i in range(position, position + window)]
        for name in list(caches)[:: 1 if w % 2 else -1]:
            update = caches[name].update
            start = time.perf_counter_ns()
            for k in keys:
                update(k, "llm", value)
            elapsed[name] += time.perf_counter_ns() - start
        position += window
        for name, cache in caches.items():
            forward(name, cache, position, spacing - window)
        position += spacing - window
    totals = {name: ns / (windows * window) for name, ns in elapsed.items()}
    caches.clear()
    gc.collect()
    return Result(
        f"update with eviction, maxsize={maxsize:,}: long-run mean",
        "ns",
        totals,
        note=f"{windows} windows of {window:,} over {span * maxsize:,} updates",
    )


def bench_zipf(n: int, maxsize: int = 1_000, universe: int = 20_000) -> list[Result]:
    rng = random.Random(42)
    weights = [1 / (k**1.1) for k in range(1, universe + 1)]
    keys = [prompt(i) for i in range(universe)]
    requests = rng.choices(range(universe), weights, k=n)
    value = generation(0)
    contenders: dict[str, Factory] = {
        LC: lambda: LangChainCache(maxsize=maxsize),
        OURS: lambda: InMemoryCache(maxsize=maxsize),
        f"{OURS} LRU": lambda: InMemoryCache(maxsize=maxsize, policy="lru"),
    }
    rate: dict[str, float] = {}
    speed: dict[str, float] = {}
    for name, make in contenders.items():
        cache = make()
        hits = 0
        start = time.perf_counter_ns()
        for i in requests:
            p = fresh(keys[i])
            if cache.lookup(p, LLM_STRING) is not None:
                hits += 1
            else:
                cache.update(p, LLM_STRING, value)
        speed[name] = (time.perf_counter_ns() - start) / n
        rate[name] = 100 * hits / n
    note = f"LRU hit rate {rate[f'{OURS} LRU']:.1f} %, {speed[f'{OURS} LRU']:.0f} ns/request"
    return [
        Result(
            f"read-through Zipf(1.1), {universe:,} keys, maxsize {maxsize:,}: hit rate",
            "%",
            {LC: rate[LC], OURS: rate[OURS]},
            note=f"FIFO both; {note}",
        ),
        Result("read-through Zipf: time per request", "ns", {LC: speed[LC], OURS: speed[OURS]}),
    ]


def bench_threads(rounds: int, ops: int, threads: int = 4) -> Result:
    keys = [prompt(i) for i in range(2_000)]
    value = generation(0)
    errors: dict[str, int] = dict.fromkeys(CONTENDERS, 0)

    def read_through(name: str, cache: Any, picks: list[int]) -> None:
        for i in picks:
            try:
                if cache.lookup(keys[i], LLM_STRING) is None:
                    cache.update(keys[i], LLM_STRING, value)
            except KeyError:
                errors[name] += 1

    def runner(name: str, make: Factory) -> Callable[[], float]:
        def run() -> float:
            cache = make(maxsize=500)
            rngs = [random.Random(seed) for seed in range(threads)]
            plans = [[rng.randrange(len(keys)) for _ in range(ops)] for rng in rngs]
            elapsed = run_threads([partial(read_through, name, cache, plan) for plan in plans])
            return elapsed / (threads * ops)

        return run

    medians = interleave({n: runner(n, m) for n, m in CONTENDERS.items()}, rounds)
    note = f"KeyError raised: LangChain {errors[LC]:,}, gencache {errors[OURS]:,}"
    return Result(f"{threads} threads, read-through, maxsize 500", "ns", medians, note)


def bench_asyncio(rounds: int, tasks: int = 1_000, per_task: int = 20) -> Result:
    keys = [prompt(i) for i in range(500)]
    value = generation(0)

    def runner(make: Factory) -> Callable[[], float]:
        async def main() -> None:
            cache = make(maxsize=250)

            async def task(seed: int) -> None:
                rng = random.Random(seed)
                for _ in range(per_task):
                    k = keys[rng.randrange(len(keys))]
                    if await cache.alookup(k, LLM_STRING) is None:
                        await cache.aupdate(k, LLM_STRING, value)
                    await asyncio.sleep(0)

            await asyncio.gather(*(task(s) for s in range(tasks)))

        def run() -> float:
            return per_op_ns(lambda: asyncio.run(main()), tasks * per_task)

        return run

    medians = interleave({n: runner(m) for n, m in CONTENDERS.items()}, rounds)
    return Result(f"{tasks:,} asyncio tasks, read-through", "ns", medians)


def bench_memory(n: int, chat: bool) -> Result:
    sizes: dict[str, float] = {}
    for name, make in CONTENDERS.items():
        gc.collect()
        tracemalloc.start()
        cache = make()
        for i in range(n):
            value = generation(i) if chat else [Generation(text=f"{i} " + "x" * 1_000)]
            cache.update(prompt(i), fresh(LLM_STRING), value)
        gc.collect()
        sizes[name] = tracemalloc.get_traced_memory()[0] / n
        tracemalloc.stop()
        del cache
    kind = "ChatGeneration: AIMessage of 1 KB + metadata" if chat else "Generation of 1 KB"
    return Result(
        f"memory per entry (500-char prompt, shared 330-char llm_string, {kind})",
        "B",
        sizes,
        note="tracemalloc, everything the cache keeps alive",
    )


def bench_chat_model(rounds: int, n: int) -> Result:
    def runner(make: Factory) -> Callable[[], float]:
        model = FakeListChatModel(responses=["cached answer"], cache=make())
        model.invoke("What is the capital of France?")

        def run() -> float:
            def loop() -> None:
                for _ in range(n):
                    model.invoke("What is the capital of France?")

            return per_op_ns(loop, n)

        return run

    medians = interleave({n: runner(m) for n, m in CONTENDERS.items()}, rounds)
    return Result("chat model `invoke`, cache hit, end to end", "ns", medians)


def _history(turns: int) -> list[BaseMessage]:
    """A conversation of ``turns`` exchanges (~1 KB each) ending with a human message.

    AI messages carry ids and metadata, as providers return them: their prompt is the
    kind gencache canonicalises, where a plain prompt is returned as it is.
    """
    messages: list[BaseMessage] = []
    for i in range(turns):
        messages.append(HumanMessage(f"Question {i}: " + "tell me more about the ticket. " * 16))
        messages.append(
            AIMessage(
                f"Answer {i}: " + "the export job fails at the upload step. " * 12,
                id=f"run-{i:04d}",
                response_metadata={"model_name": "gpt-4o-mini", "finish_reason": "stop"},
                usage_metadata={"input_tokens": 500, "output_tokens": 120, "total_tokens": 620},
            )
        )
    messages.append(HumanMessage("And what should I do now?"))
    return messages


def bench_chat_history(rounds: int, n: int, turns: int = 20) -> Result:
    history = _history(turns)

    def runner(make: Factory) -> Callable[[], float]:
        model = FakeListChatModel(responses=["cached answer"], cache=make())
        model.invoke(history)

        def run() -> float:
            def loop() -> None:
                for _ in range(n):
                    model.invoke(history)

            return per_op_ns(loop, n)

        return run

    medians = interleave({n: runner(m) for n, m in CONTENDERS.items()}, rounds)
    size = sum(len(str(m.content)) for m in history) // 1_000
    return Result(
        f"chat model `invoke`, cache hit, {turns}-turn history with AI metadata",
        "ns",
        medians,
        note=f"~{size} KB of message text; gencache keys it by its canonical form",
    )


def _size_of(result: Result) -> str:
    return result.name.split(":")[0].removeprefix("update with eviction, ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, smaller sizes")
    args = parser.parse_args()
    q = args.quick
    rounds = 5 if q else 9
    results = [
        bench_lookup(rounds, 50_000, hit=True),
        bench_lookup(rounds, 50_000, hit=False),
        bench_update(rounds, 20_000),
    ]
    sizes = (1_000, 10_000, 100_000) if q else (1_000, 10_000, 100_000, 1_000_000)
    for maxsize in sizes:
        results.append(bench_eviction(maxsize, 5, 20_000))
    for maxsize in sizes:
        results.append(bench_eviction_long_run(maxsize, windows=40 if q else 80))
    results += bench_zipf(50_000 if q else 200_000)
    results.append(bench_threads(rounds, 5_000 if q else 20_000))
    results.append(bench_asyncio(3 if q else 5))
    results.append(bench_memory(5_000 if q else 20_000, chat=False))
    results.append(bench_memory(5_000 if q else 20_000, chat=True))
    results.append(bench_chat_model(rounds, 1_000 if q else 3_000))
    results.append(bench_chat_history(rounds, 300 if q else 1_000))
    print(f"InMemoryCache benchmark — {environment()}\n")
    print(table(results, LC, OURS))
    for kind in ("just filled", "long-run mean"):
        rows = [r for r in results if r.name.startswith("update with eviction") and kind in r.name]
        first, last = rows[0], rows[-1]
        growth = {who: last.values[who] / first.values[who] for who in (LC, OURS)}
        print(
            f"\nEviction cost, {kind}, from {_size_of(first)} to {_size_of(last)}: "
            f"LangChain grows {growth[LC]:.1f}×, gencache {growth[OURS]:.1f}×"
        )


if __name__ == "__main__":
    main()
