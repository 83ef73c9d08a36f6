"""Stream hit: time to first chunk and to last chunk, vs an uncached stream of the fake model.

Run: ``python benchmarks/bench_stream.py [--quick] [--rounds N] [--json PATH]``. The
provider is LangChain's ``GenericFakeChatModel`` answering a ~1 KB text (about 340
chunks: it streams words and the spaces between them), with no simulated latency, so
"uncached" is LangChain's own streaming overhead, the floor a cache hit competes with.
Each stream is one sample, timed from the ``stream()`` call to the first and to the last
chunk received, over interleaved rounds; the harness's table gives median, p90, p99, max.

Rows: a hit of ``gencache.cached(model, InMemoryCache())`` and of ``SQLiteCache``; a miss
(recording the chunks, storing them at the end) against the same uncached stream.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel, GenericFakeChatModel

from _harness import Round, Row, arguments, environment, interleave, report, rounds
from gencache import InMemoryCache
from gencache.langchain import cached
from gencache.sqlite import SQLiteCache

UNCACHED, OURS = "uncached stream", "gencache"
Samples = dict[str, list[float]]
ANSWER = ("The customer reports that the nightly export job fails with a timeout. " * 14)[:1000]
QUESTION = "Summarise the ticket in two sentences."


def _answers() -> Iterator[str]:
    while True:
        yield ANSWER


def _fake() -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=_answers())


def _time_stream(model: BaseChatModel, question: str) -> tuple[float, float, int]:
    """Nanoseconds to the first and the last chunk of one ``stream()``, and the chunk count."""
    start = time.perf_counter_ns()
    stream = model.stream(question)
    next(stream)
    first = time.perf_counter_ns() - start
    count = 1 + sum(1 for _ in stream)
    return float(first), float(time.perf_counter_ns() - start), count


Contenders = dict[str, tuple[BaseChatModel, Callable[[int], str]]]


def _rounds(contenders: Contenders, rounds: int, n: int) -> tuple[Samples, Samples, int]:
    """Samples (ns, one per stream) to first and to last chunk per contender; chunk count."""
    last: Samples = {name: [] for name in contenders}
    counts: list[int] = []

    def runner(name: str) -> Round:
        model, question = contenders[name]

        def run() -> list[float]:
            firsts = []
            for i in range(n):
                first, total, count = _time_stream(model, question(i))
                firsts.append(first)
                last[name].append(total)
                counts.append(count)
            return firsts

        return run

    firsts = interleave({name: runner(name) for name in contenders}, rounds)
    return firsts, last, max(counts)


def bench_hits(rounds: int, n: int) -> list[Row]:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        backends: dict[str, Any] = {
            "InMemoryCache": InMemoryCache(),
            "SQLiteCache": SQLiteCache(Path(tmp) / "bench.sqlite3"),
        }
        for backend, cache in backends.items():
            hit = cached(_fake(), cache=cache)
            list(hit.stream(QUESTION))  # the miss that writes the entry
            contenders: Contenders = {
                UNCACHED: (_fake(), lambda _: QUESTION),
                OURS: (hit, lambda _: QUESTION),
            }
            first, last, count = _rounds(contenders, rounds, n)
            note = f"{count} chunks"
            results.append(Row(f"stream hit ({backend}): first chunk", "ns", first, note))
            results.append(Row(f"stream hit ({backend}): last chunk", "ns", last, note))
    return results


def bench_miss(rounds: int, n: int) -> list[Row]:
    cache = InMemoryCache()
    seen = iter(range(10**9))
    miss = cached(_fake(), cache=cache)
    contenders: Contenders = {
        UNCACHED: (_fake(), lambda _: QUESTION),
        OURS: (miss, lambda _: f"{QUESTION} #{next(seen)}"),  # a new request: always a miss
    }
    first, last, count = _rounds(contenders, rounds, n)
    note = f"{count} chunks; recorded, stored at the end"
    return [
        Row("stream miss (InMemoryCache): first chunk", "ns", first, note),
        Row("stream miss (InMemoryCache): last chunk", "ns", last, note),
    ]


def main() -> None:
    args = arguments(__doc__, "fewer rounds and streams").parse_args()
    n_rounds, n = rounds(args, 3, 7), 10 if args.quick else 30
    results = bench_hits(n_rounds, n) + bench_miss(n_rounds, n)
    report(f"Streaming benchmark — {environment()}", [(results, UNCACHED, OURS)], args.json)


if __name__ == "__main__":
    main()
