"""gencache.InMemoryCache vs langchain_core.caches.InMemoryCache, side by side.

Run: ``python benchmarks/bench_memory.py [--quick] [--rounds N] [--json PATH]``. Prints the
harness's markdown table (median, p90, p99 and max per operation over interleaved rounds;
sub-microsecond operations are sampled as the mean of batches of 500) and the ratio
ours / LangChain's (below 1 is faster/smaller).
"""

from __future__ import annotations

import asyncio
import gc
import random
import statistics
import tracemalloc
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from langchain_core.caches import InMemoryCache as LangChainCache
from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import Generation

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
    paired,
    per_op_ns,
    prompt,
    report,
    rounds,
    run_threads,
    single,
    timed,
)
from gencache import InMemoryCache

LC, OURS = "LangChain", "gencache"
Factory = Callable[..., Any]
CONTENDERS: dict[str, Factory] = {LC: LangChainCache, OURS: InMemoryCache}
BATCH = 500  # operations per sample, for operations too short to time one by one


def bench_lookup(rounds: int, n: int, hit: bool, *, settled: bool = False) -> Row:
    """Lookups of fresh equal strings; ``settled``: each batch of gencache's hits ends
    with ``stats()``, which adds up what they saved (the hit's deferred cost)."""
    keys = [prompt(i) for i in range(1_000)]
    value = generation(0)
    caches = {name: make() for name, make in CONTENDERS.items()}
    for cache in caches.values():
        for k in keys:
            cache.update(k, LLM_STRING, value)

    base = keys if hit else [k + "?" for k in keys]

    def looping(cache: Any) -> Callable[[Sequence[tuple[str, str]]], None]:
        lookup = cache.lookup
        settle = getattr(cache, "stats", None) if settled else None  # LangChain has none

        def loop(chunk: Sequence[tuple[str, str]]) -> None:
            for p, s in chunk:
                lookup(p, s)
            if settle is not None:
                settle()

        return loop

    def runner(cache: Any) -> Round:
        def run() -> list[float]:
            pairs = [(fresh(base[i % len(base)]), fresh(LLM_STRING)) for i in range(n)]
            return batched(looping(cache), pairs, BATCH)

        return run

    samples = interleave({name: runner(c) for name, c in caches.items()}, rounds)

    def make(b: int) -> list[tuple[str, str]]:
        return [(fresh(base[(b * BATCH + i) % len(base)]), fresh(LLM_STRING)) for i in range(BATCH)]

    ratio = paired(looping(caches[LC]), looping(caches[OURS]), make, 60 * rounds)
    note = f"paired batches: median ratio {ratio:.2f}"
    if settled:
        name = "lookup hit, savings added up (gencache: stats() after each 500 hits)"
        return Row(name, "ns", samples, note=f"what a hit costs, its accounting included; {note}")
    return Row(f"lookup {'hit' if hit else 'miss'} (fresh equal strings)", "ns", samples, note)


def bench_update(rounds: int, n: int) -> Row:
    value = generation(0)
    ps = [prompt(i) for i in range(n)]

    def writing(cache: Any) -> Callable[[Sequence[tuple[str, str]]], None]:
        def loop(chunk: Sequence[tuple[str, str]]) -> None:
            for p, s in chunk:
                cache.update(p, s, value)

        return loop

    def runner(make: Factory) -> Round:
        def run() -> list[float]:
            pairs = [(fresh(p), fresh(LLM_STRING)) for p in ps]
            return batched(writing(make()), pairs, BATCH)

        return run

    samples = interleave({name: runner(m) for name, m in CONTENDERS.items()}, rounds)
    growing = {name: make() for name, make in CONTENDERS.items()}

    def make_batch(b: int) -> list[tuple[str, str]]:
        return [(f"{p} #{b}", fresh(LLM_STRING)) for p in ps[:BATCH]]

    ratio = paired(writing(growing[LC]), writing(growing[OURS]), make_batch, 40 * rounds)
    note = f"paired batches: median ratio {ratio:.2f}"
    return Row("update, new key, unbounded", "ns", samples, note)


def _evicting_key(i: int) -> str:
    return f"short prompt {i}"


def bench_eviction(maxsize: int, rounds: int, n: int) -> Row:
    """Update with eviction, timed over the first ``rounds * n`` updates after filling."""
    value = generation(0)
    caches: dict[str, Any] = {}
    counters: dict[str, int] = {}
    for name, make in CONTENDERS.items():
        cache = make(maxsize=maxsize)
        for i in range(maxsize):
            cache.update(_evicting_key(i), "llm", value)
        caches[name], counters[name] = cache, maxsize

    def runner(name: str) -> Round:
        def run() -> list[float]:
            cache, start = caches[name], counters[name]
            keys = [_evicting_key(i) for i in range(start, start + n)]
            counters[name] = start + n

            def loop(chunk: Sequence[str]) -> None:
                for k in chunk:
                    cache.update(k, "llm", value)

            return batched(loop, keys, BATCH)

        return run

    samples = interleave({name: runner(name) for name in caches}, rounds)
    caches.clear()
    gc.collect()
    return Row(
        f"update with eviction, maxsize={maxsize:,}: just filled",
        "ns",
        samples,
        note=f"first {rounds * n:,} updates after filling",
    )


def bench_eviction_long_run(maxsize: int, windows: int = 80, span: int = 20) -> Row:
    """Update with eviction, averaged over a long run: ``span * maxsize`` updates.

    LangChain's class evicts with ``del d[next(iter(d))]``: each deletion leaves a dead
    slot at the front of the dict that every later ``next(iter(d))`` steps over, until
    the dict compacts itself on a resize. Its cost therefore climbs through a cycle of
    1-2.5 x maxsize updates and drops back, and the first updates after filling are the
    cheapest. A cache that runs for hours pays the cycle's mean: this measures it by
    timing ``windows`` evenly spaced windows over ``span`` x maxsize updates (several
    cycles), after a warm-up of 5 x maxsize updates. Each window is one sample (its
    mean ns per update).

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
    samples: dict[str, list[float]] = {name: [] for name in caches}
    position = maxsize + warmup
    for w in range(windows):  # the contenders take turns, so that drift hits both
        keys = [_evicting_key(i) for i in range(position, position + window)]
        for name in list(caches)[:: 1 if w % 2 else -1]:
            update = caches[name].update

            def loop(update: Callable[..., None] = update, keys: list[str] = keys) -> None:
                for k in keys:
                    update(k, "llm", value)

            samples[name].append(per_op_ns(loop, window))
        position += window
        for name, cache in caches.items():
            forward(name, cache, position, spacing - window)
        position += spacing - window
    caches.clear()
    gc.collect()
    means = ", ".join(f"{who} {statistics.fmean(xs):,.0f}" for who, xs in samples.items())
    return Row(
        f"update with eviction, maxsize={maxsize:,}: long run",
        "ns",
        samples,
        note=f"{windows} windows of {window:,} over {span * maxsize:,} updates; mean ns: {means}",
    )


def bench_zipf(n: int, maxsize: int = 1_000, universe: int = 20_000) -> list[Row]:
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
    speed: dict[str, list[float]] = {}
    for name, make in contenders.items():
        cache = make()
        hits = 0

        def loop(chunk: Sequence[int], cache: Any = cache) -> None:
            nonlocal hits
            for i in chunk:
                p = fresh(keys[i])
                if cache.lookup(p, LLM_STRING) is not None:
                    hits += 1
                else:
                    cache.update(p, LLM_STRING, value)

        speed[name] = batched(loop, requests, BATCH)
        rate[name] = 100 * hits / n
    lru = f"{OURS} LRU"
    note = f"LRU hit rate {rate[lru]:.1f} %, {statistics.median(speed[lru]):.0f} ns/request"
    return [
        single(
            f"read-through Zipf(1.1), {universe:,} keys, maxsize {maxsize:,}: hit rate",
            "%",
            {LC: rate[LC], OURS: rate[OURS]},
            note=f"FIFO both; {note}",
        ),
        Row("read-through Zipf: time per request", "ns", {LC: speed[LC], OURS: speed[OURS]}),
    ]


def bench_threads(rounds: int, ops: int, threads: int = 4) -> Row:
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

    def runner(name: str, make: Factory) -> Round:
        def run() -> list[float]:
            cache = make(maxsize=500)
            rngs = [random.Random(seed) for seed in range(threads)]
            plans = [[rng.randrange(len(keys)) for _ in range(ops)] for rng in rngs]
            elapsed = run_threads([partial(read_through, name, cache, plan) for plan in plans])
            return [elapsed / (threads * ops)]

        return run

    samples = interleave({n: runner(n, m) for n, m in CONTENDERS.items()}, rounds)
    note = f"one sample a round; KeyError: LangChain {errors[LC]:,}, gencache {errors[OURS]:,}"
    return Row(f"{threads} threads, read-through, maxsize 500", "ns", samples, note)


def bench_asyncio(rounds: int, tasks: int = 1_000, per_task: int = 20) -> Row:
    keys = [prompt(i) for i in range(500)]
    value = generation(0)

    def runner(make: Factory) -> Round:
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

        def run() -> list[float]:
            return [per_op_ns(lambda: asyncio.run(main()), tasks * per_task)]

        return run

    samples = interleave({n: runner(m) for n, m in CONTENDERS.items()}, rounds)
    return Row(f"{tasks:,} asyncio tasks, read-through", "ns", samples, "one sample a round")


def bench_memory(n: int, chat: bool) -> Row:
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
    return single(
        f"memory per entry (500-char prompt, shared 330-char llm_string, {kind})",
        "B",
        sizes,
        note="tracemalloc, everything the cache keeps alive",
    )


def bench_chat_model(rounds: int, n: int) -> Row:
    def runner(make: Factory) -> Round:
        model = FakeListChatModel(responses=["cached answer"], cache=make())
        model.invoke("What is the capital of France?")

        def run() -> list[float]:
            return [timed(model.invoke, "What is the capital of France?") for _ in range(n)]

        return run

    samples = interleave({n: runner(m) for n, m in CONTENDERS.items()}, rounds)
    return Row("chat model `invoke`, cache hit, end to end", "ns", samples)


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


def bench_chat_history(rounds: int, n: int, turns: int = 20) -> Row:
    history = _history(turns)

    def runner(make: Factory) -> Round:
        model = FakeListChatModel(responses=["cached answer"], cache=make())
        model.invoke(history)

        def run() -> list[float]:
            return [timed(model.invoke, history) for _ in range(n)]

        return run

    samples = interleave({n: runner(m) for n, m in CONTENDERS.items()}, rounds)
    size = sum(len(str(m.content)) for m in history) // 1_000
    return Row(
        f"chat model `invoke`, cache hit, {turns}-turn history with AI metadata",
        "ns",
        samples,
        note=f"~{size} KB of message text; gencache keys it by its canonical form",
    )


def _size_of(result: Row) -> str:
    return result.name.split(":")[0].removeprefix("update with eviction, ")


def main() -> None:
    args = arguments(__doc__).parse_args()
    q = args.quick
    n_rounds = rounds(args, 5, 9)
    results = [
        bench_lookup(n_rounds, 50_000, hit=True),
        bench_lookup(n_rounds, 50_000, hit=True, settled=True),
        bench_lookup(n_rounds, 50_000, hit=False),
        bench_update(n_rounds, 20_000),
    ]
    sizes = (1_000, 10_000, 100_000) if q else (1_000, 10_000, 100_000, 1_000_000)
    for maxsize in sizes:
        results.append(bench_eviction(maxsize, 5, 20_000))
    for maxsize in sizes:
        results.append(bench_eviction_long_run(maxsize, windows=40 if q else 80))
    results += bench_zipf(50_000 if q else 200_000)
    results.append(bench_threads(n_rounds, 5_000 if q else 20_000))
    results.append(bench_asyncio(3 if q else 5))
    results.append(bench_memory(5_000 if q else 20_000, chat=False))
    results.append(bench_memory(5_000 if q else 20_000, chat=True))
    results.append(bench_chat_model(n_rounds, 1_000 if q else 3_000))
    results.append(bench_chat_history(n_rounds, 300 if q else 1_000))
    growth: dict[str, dict[str, float]] = {}
    for kind in ("just filled", "long run"):  # medians: of rounds, of windows
        rows = [r for r in results if r.name.startswith("update with eviction") and kind in r.name]
        first, last = rows[0], rows[-1]
        growth[kind] = {who: last.median(who) / first.median(who) for who in (LC, OURS)}
    report(
        f"InMemoryCache benchmark — {environment()}",
        [(results, LC, OURS)],
        args.json,
        {"eviction_growth": growth},
    )
    for kind, grew in growth.items():
        print(
            f"\nEviction cost (median), {kind}, from {_size_of(first)} to {_size_of(last)}: "
            f"LangChain grows {grew[LC]:.1f}×, gencache {grew[OURS]:.1f}×"
        )


if __name__ == "__main__":
    main()
