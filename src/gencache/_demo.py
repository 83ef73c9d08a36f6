"""The ``gencache demo``: a LangChain chat model asked the same prompts twice through a cache.

Each answer is labelled with where it came from (the model, or the cache) and each pass
with what it cost. A persistent cache (SQLite, Redis) outlives the process, so a second
``gencache demo --backend sqlite`` is answered from the first one's cache: the demo says
so, and compares with what the model calls would have cost (the simulated latency times
the number of prompts), since this process never measured them. Only public gencache
API is used: ``lookup``/``update`` (through LangChain), ``stats()`` and ``len()``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from gencache import GenCache, InMemoryCache
from gencache.stats import Savings

if TYPE_CHECKING:
    from langchain_core.caches import BaseCache
    from langchain_core.language_models import FakeListChatModel

__all__ = ["ANSWERS", "MODEL", "PRICE", "PROMPTS", "demo_command", "open_cache", "run_demo"]

PROMPTS = [
    "What is the capital of France?",
    "Summarise the plot of Hamlet in one sentence.",
    "Translate 'good morning' into Spanish.",
    "Give me three names for a grey cat.",
    "What does HTTP status 418 mean?",
]
ANSWERS = [
    "Paris.",
    "A Danish prince avenges his father's murder and destroys his family doing it.",
    "Buenos días.",
    "Ash, Smokey and Pewter.",
    "I'm a teapot: an April Fools' joke from RFC 2324.",
]
# Schemes are case-insensitive (RFC 3986): REDIS://host is a Redis URL, not a file name.
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
#: The simulated model's name, and the example price the demo states (per million tokens,
#: input and output: gpt-4o-mini's list price when this was written).
MODEL = "demo-model"
PRICE = (0.15, 0.60)
TURNS = 5


@dataclass(frozen=True, slots=True)
class _Pass:
    """One pass over the prompts: how long it took and how many the model answered."""

    seconds: float
    from_model: int

    @property
    def from_cache(self) -> int:
        return len(PROMPTS) - self.from_model


def open_cache(backend: str) -> tuple[GenCache, str, bool]:
    """Open the demo's cache.

    Args:
        backend: ``"memory"``, ``"sqlite"`` (``demo.sqlite3`` beside the default cache
            file), a SQLite path, or a Redis URL (namespace ``gencache-demo``, strict).

    Returns:
        The cache, a label that says what and where it is, and whether it outlives this
        process.
    """
    prices = {MODEL: PRICE}
    if backend == "memory":
        cache = InMemoryCache(maxsize=1_000, prices=prices)
        return cache, "gencache.InMemoryCache (in this process)", False
    if backend.lower().startswith(_REDIS_SCHEMES):
        from gencache import RedisCache

        redis = RedisCache(backend, namespace="gencache-demo", strict=True, prices=prices)
        return redis, f"gencache.RedisCache at {redis!r}", True
    from gencache.sqlite import SQLiteCache, default_path

    path = default_path().with_name("demo.sqlite3") if backend == "sqlite" else Path(backend)
    return SQLiteCache(path, prices=prices), f"gencache.SQLiteCache at {path}", True


def demo_command(backend: str, *, latency: float, reset: bool, out: TextIO) -> None:
    """Run ``gencache demo``: open the cache of ``backend`` and ask every prompt twice."""
    cache, label, persistent = open_cache(backend)
    if reset:
        cache.clear()
    run_demo(cache, latency=latency, out=out, label=label, persistent=persistent)


def run_demo(
    cache: GenCache, *, latency: float, out: TextIO, label: str, persistent: bool = False
) -> None:
    """Ask every prompt twice through ``cache``; report where each answer came from.

    Args:
        cache: The cache the model uses.
        latency: Seconds of simulated provider delay per model call.
        out: Where the report goes.
        label: What ``cache`` is, for the report's first line.
        persistent: Whether entries may come from an earlier process (SQLite, Redis).
    """
    w = out.write
    n = len(PROMPTS)
    w(f"gencache demo: {n} prompts, asked twice, through {label}\n")
    w(
        "The model is LangChain's FakeListChatModel with a simulated provider latency of "
        f"{latency * 1000:.0f} ms per call (no network, no API key).\n"
    )
    if persistent:
        w(
            f"Entries already in this cache, written by earlier runs: {len(cache)} "
            "(--reset starts empty).\n"
        )
    # Imported here: LangChain's model classes take ~0.7 s to import, and the cli module,
    # which every gencache command loads, imports this one.
    from langchain_core.language_models import FakeListChatModel

    model = FakeListChatModel(responses=ANSWERS, sleep=latency, cache=cache)
    first = _ask_all(model, out, 1)
    second = _ask_all(model, out, 2)
    # Pass 1 measured the model's cost only if every prompt went to the model.
    cold = first.seconds if first.from_cache == 0 else None
    w("\n")
    if first.from_cache:
        w(
            f"Pass 1: {_count(first.from_cache)} answered from the cache an earlier process "
            f"wrote: {_instead(first.seconds, None, latency)}.\n"
        )
    if second.from_cache:
        if first.from_cache == 0:
            source = "the cache pass 1 wrote"
        elif first.from_cache == n:
            source = "the same cache"
        else:
            source = "the cache (pass 1 and an earlier process wrote it)"
        w(
            f"Pass 2: {_count(second.from_cache)} answered from {source}: "
            f"{_instead(second.seconds, cold, latency, explain=False)}.\n"
        )
    if second.from_model:
        w(
            f"Pass 2: {_count(second.from_model)} went to the model again: the cache did not "
            "keep what pass 1 wrote (see any warning above).\n"
        )
    _conversation_demo(cache, latency, out)
    stats = cache.stats()
    w(
        f"\nCache stats (this process): hits={stats.hits} misses={stats.misses} "
        f"hit_rate={stats.hit_rate:.0%} updates={stats.updates} size={stats.size} "
        f"evictions={stats.evictions} expirations={stats.expirations}\n"
    )
    saved = stats.saved
    w(
        f"Saved by this process's hits: {saved.calls} model calls, "
        f"{saved.input_tokens:,} input and {saved.output_tokens:,} output tokens, "
        f"{_duration(saved.seconds)} of provider time"
    )
    if saved.money is not None:
        w(
            f", ${saved.money:.6f} at an example price of ${PRICE[0]:.2f} / ${PRICE[1]:.2f} "
            "per million input / output tokens"
        )
    w(".\n")
    if persistent:
        stored = cache.stored_savings()  # every model: the prompts' model and the chat's
        if stored:
            total = sum(stored.values(), Savings())
            w(
                f"Saved by every process that used this cache: {total.calls} model calls, "
                f"{total.input_tokens + total.output_tokens:,} tokens, "
                f"{_duration(total.seconds)} of provider time "
                "(gencache stats TARGET shows the same).\n"
            )
    if persistent and first.from_cache < n:
        w("Run the same command again: a new process will be answered from this cache.\n")
    elif not persistent:
        w("This cache ends with the process; --backend sqlite keeps it for the next one.\n")


def _conversation_demo(cache: GenCache, latency: float, out: TextIO) -> None:
    """A multi-turn chat, run twice, through gencache and through LangChain's own cache."""
    from langchain_core.caches import InMemoryCache as LangChainInMemoryCache

    w = out.write
    w(
        f"\nA {TURNS}-turn conversation, run twice. The model reports usage and a new "
        "response id on every call, as real providers do; on a hit LangChain also writes "
        "total_cost=0 into the message, which becomes the next turn's history.\n"
    )
    contenders: list[tuple[str, BaseCache]] = [
        ("gencache (canonical keys)", cache),
        ("LangChain's InMemoryCache", LangChainInMemoryCache()),
    ]
    for name, store in contenders:
        model = _demo_model(store, latency)
        for run in (1, 2):
            before = model.calls
            start = time.perf_counter()
            _converse(model)
            hits = TURNS - (model.calls - before)
            took = _duration(time.perf_counter() - start)
            w(f"  {name:<28} run {run}: {hits}/{TURNS} turns answered from the cache ({took})\n")


def _demo_model(cache: BaseCache, latency: float) -> Any:
    """A chat model that answers after ``latency`` seconds and reports usage and ids."""
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage, BaseMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    class DemoChatModel(BaseChatModel):
        delay: float = 0.0
        calls: int = 0

        @property
        def _llm_type(self) -> str:
            return MODEL

        def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
            self.calls += 1
            time.sleep(self.delay)
            question = str(messages[-1].content)
            text = f"Answer {self.calls} to {question!r}."
            tokens_in = sum(len(str(m.content)) for m in messages) // 4 + 10
            message = AIMessage(
                content=text,
                id=f"resp-{time.monotonic_ns()}",
                usage_metadata={
                    "input_tokens": tokens_in,
                    "output_tokens": len(text) // 4 + 1,
                    "total_tokens": tokens_in + len(text) // 4 + 1,
                },
                response_metadata={"model_name": MODEL, "created": time.time()},
            )
            return ChatResult(generations=[ChatGeneration(message=message)])

    return DemoChatModel(cache=cache, delay=latency)


def _converse(model: Any) -> None:
    from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

    history: list[BaseMessage] = [SystemMessage("You are a concise travel guide.")]
    for turn in range(TURNS):
        history.append(HumanMessage(f"Day {turn + 1} in Lisbon: where should I go?"))
        history.append(model.invoke(history))


def _ask_all(model: FakeListChatModel, out: TextIO, number: int) -> _Pass:
    """Invoke ``model`` on every prompt once; print each answer and where it came from."""
    out.write(f"\nPass {number}:\n")
    start = time.perf_counter()
    called = 0
    for i, prompt in enumerate(PROMPTS):
        # FakeListChatModel answers responses[i] and then moves i on; a cache hit does not
        # reach the model, so i stays. Setting it first pairs each prompt with its own
        # answer and tells, without timing, whether the model was called.
        model.i = i
        t0 = time.perf_counter()
        answer = model.invoke(prompt).content
        ms = (time.perf_counter() - t0) * 1000
        asked = model.i != i
        called += asked
        source = "from the model" if asked else "from the cache"
        out.write(f"  {ms:8.2f} ms  {source}  {prompt!r} -> {answer!r}\n")
    done = _Pass(time.perf_counter() - start, called)
    n = len(PROMPTS)
    cold = " (a cold run)" if number == 1 and done.from_cache == 0 else ""
    out.write(
        f"  pass {number}: {_duration(done.seconds)}, {done.from_model}/{n} sent to the model, "
        f"{done.from_cache}/{n} answered from cache{cold}\n"
    )
    return done


def _instead(seconds: float, cold: float | None, latency: float, *, explain: bool = True) -> str:
    """What a pass cost against the model's cost: ``cold`` if measured, else an estimate."""
    took = _duration(seconds)
    if cold is not None:
        faster = cold / seconds if seconds > 0 else float("inf")
        return f"{took} instead of the {_duration(cold)} pass 1 took ({faster:,.0f}x faster)"
    if latency == 0:
        return took
    n = len(PROMPTS)
    why = f" ({n} model calls x {latency * 1000:.0f} ms of simulated latency)" if explain else ""
    return f"{took} instead of {_duration(n * latency)}{why}"


def _count(prompts: int) -> str:
    return "every prompt" if prompts == len(PROMPTS) else f"{prompts} of {len(PROMPTS)} prompts"


def _duration(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:,.1f} s"
    ms = seconds * 1000
    return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"
