"""Stream hit: time to first chunk and to last chunk, vs an uncached stream of the fake model.

Run: ``python benchmarks/bench_stream.py [--quick]``. The provider is LangChain's
``GenericFakeChatModel`` answering a ~1 KB text (about 340 chunks: it streams words and
the spaces between them), with no simulated latency, so "uncached" is LangChain's own
streaming overhead, the floor a cache hit competes with. Each figure is the median over
interleaved rounds of the median of one round's streams, timed from the ``stream()``
call to the first and to the last chunk received.

Rows: a hit of ``gencache.cached(model, InMemoryCache())`` and of ``SQLiteCache``; a miss
(recording the chunks, storing them at the end) against the same uncached stream.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel, GenericFakeChatModel

from _harness import Result, environment, interleave
from gencache import InMemoryCache
from gencache.langchain import cached
from gencache.sqlite import SQLiteCache

UNCACHED, OURS = "uncached stream", "gencache"
ANSWER = ("The customer reports that the nightly export job fails with a timeout. " * 14)[:1000]
QUESTION = "Summarise the ticket in two sentences."


def _answers() -> Iterator[str]:
    while True:
        yield ANSWER


def _fake() -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=_answers())


def _time_stream(model: BaseChatModel, question: str) -> tuple[float, float, int]:
    """Seconds to the first and the last chunk of one ``stream()``, and the chunk count."""
    start = time.perf_counter()
    stream = model.stream(question)
    next(stream)
    first = time.perf_counter() - start
    count = 1 + sum(1 for _ in stream)
    return first, time.perf_counter() - start, count


def _rounds(
    contenders: dict[str, tuple[BaseChatModel, Callable[[int], str]]], rounds: int, n: int
) -> tuple[dict[str, float], dict[str, float], int]:
    """Medians (µs) to first and to last chunk per contender, and the chunk count."""
    last: dict[str, float] = {}
    counts: list[int] = []

    def runner(name: str) -> Callable[[], float]:
        model, question = contenders[name]
        samples_last: list[float] = []

        def run() -> float:
            firsts = []
            for i in range(n):
                first, total, count = _time_stream(model, question(i))
                firsts.append(first)
                samples_last.append(total)
                counts.append(count)
            last[name] = statistics.median(samples_last) * 1e6
            return statistics.median(firsts) * 1e6

        return run

    firsts = interleave({name: runner(name) for name in contenders}, rounds)
    return firsts, last, max(counts)


def bench_hits(rounds: int, n: int) -> list[Result]:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        backends: dict[str, Any] = {
            "InMemoryCache": InMemoryCache(),
            "SQLiteCache": SQLiteCache(Path(tmp) / "bench.sqlite3"),
        }
        for backend, cache in backends.items():
            hit = cached(_fake(), cache=cache)
            list(hit.stream(QUESTION))  # the miss that writes the entry
            contenders = {UNCACHED: (_fake(), lambda _: QUESTION), OURS: (hit, lambda _: QUESTION)}
            first, last, count = _rounds(contenders, rounds, n)
            note = f"{count} chunks"
            results.append(Result(f"stream hit ({backend}): first chunk", "µs", first, note))
            results.append(Result(f"stream hit ({backend}): last chunk", "µs", last, note))
    return results


def bench_miss(rounds: int, n: int) -> list[Result]:
    cache = InMemoryCache()
    seen = iter(range(10**9))
    miss = cached(_fake(), cache=cache)
    contenders = {
        UNCACHED: (_fake(), lambda _: QUESTION),
        OURS: (miss, lambda _: f"{QUESTION} #{next(seen)}"),  # a new request: always a miss
    }
    first, last, count = _rounds(contenders, rounds, n)
    note = f"{count} chunks; recorded, stored at the end"
    return [
        Result("stream miss (InMemoryCache): first chunk", "µs", first, note),
        Result("stream miss (InMemoryCache): last chunk", "µs", last, note),
    ]


def _table(results: list[Result]) -> str:
    # The harness's table() prints ns figures; these are µs, with the ratio alike.
    lines = [
        f"| workload | {UNCACHED} | {OURS} | ratio ({OURS} / {UNCACHED}) | note |",
        "|---|---:|---:|---:|---|",
    ]
    for r in results:
        base, mine = r.values[UNCACHED], r.values[OURS]
        lines.append(
            f"| {r.name} | {base:,.0f} µs | {mine:,.0f} µs | {mine / base:.2f}× | {r.note} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and streams")
    args = parser.parse_args()
    rounds, n = (3, 10) if args.quick else (7, 30)
    results = bench_hits(rounds, n) + bench_miss(rounds, n)
    print(f"Streaming benchmark — {environment()}\n")
    print(_table(results))


if __name__ == "__main__":
    main()
