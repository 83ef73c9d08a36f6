"""``control()``: per-call options on contextvars, and where LangChain carries them."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from typing import Any

import pytest
from langchain_core.caches import BaseCache
from langchain_core.language_models import FakeListChatModel
from langchain_core.outputs import Generation
from langchain_core.runnables import RunnableConfig, RunnableLambda, RunnableParallel

from gencache._control import DEFAULT, Control, Options, control, current_options

# -- the options object and the defaults ---------------------------------------------------


def test_outside_any_control_the_options_are_the_default_constant() -> None:
    assert current_options() is DEFAULT
    assert Options(read=True, write=True, ttl=None, max_age=None, scope=None) == DEFAULT


def test_options_are_immutable_and_slotted() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT.read = False  # type: ignore[misc]
    assert not hasattr(DEFAULT, "__dict__")
    assert hash(Options(scope="a")) == hash(Options(scope="a"))


def test_signature_shows_the_documented_defaults() -> None:
    params = inspect.signature(control).parameters.values()
    assert [(p.name, p.kind, p.default) for p in params] == [
        (name, inspect.Parameter.KEYWORD_ONLY, default)
        for name, default in [
            ("read", True),
            ("write", True),
            ("ttl", None),
            ("max_age", None),
            ("scope", None),
        ]
    ]


def test_with_block_applies_the_options_and_restores_them() -> None:
    with control(read=False, write=False, ttl=60, max_age=30.5, scope="tenant-a") as opts:
        assert current_options() is opts
        assert opts == Options(read=False, write=False, ttl=60.0, max_age=30.5, scope="tenant-a")
        assert isinstance(opts.ttl, float)
    assert current_options() is DEFAULT


def test_options_are_restored_when_the_block_raises() -> None:
    with pytest.raises(KeyError), control(read=False):
        raise KeyError("boom")
    assert current_options() is DEFAULT


@pytest.mark.parametrize("ctl", [control(), control(read=True, write=True, ttl=None)])
def test_a_control_that_changes_nothing_keeps_the_default_object(ctl: Control) -> None:
    with ctl as opts:
        assert opts is DEFAULT
        assert current_options() is DEFAULT


def test_repr_names_the_options_passed() -> None:
    assert repr(control(scope="a", ttl=5)) == "control(scope='a', ttl=5.0)"


# -- validation at the call of control(...) -------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"ttl": 0}, ValueError, r"control\(ttl=...\) must be a finite number of seconds"),
        ({"ttl": -1}, ValueError, "greater than 0"),
        ({"ttl": float("nan")}, ValueError, "greater than 0"),
        ({"ttl": float("inf")}, ValueError, "greater than 0"),
        ({"ttl": "60"}, TypeError, r"control\(ttl=...\) must be a number of seconds, not str"),
        ({"ttl": True}, TypeError, "not bool"),
        ({"max_age": 0.0}, ValueError, r"control\(max_age=...\) must be a finite number"),
        ({"max_age": -5}, ValueError, "greater than 0"),
        ({"max_age": [1]}, TypeError, r"control\(max_age=...\) must be a number of seconds"),
        ({"max_age": False}, TypeError, "not bool"),
        ({"read": 0}, TypeError, r"control\(read=...\) must be a bool, not int"),
        ({"read": None}, TypeError, r"control\(read=...\) must be a bool, not NoneType"),
        ({"write": "no"}, TypeError, r"control\(write=...\) must be a bool, not str"),
        ({"scope": 7}, TypeError, r"control\(scope=...\) must be a str or None, not int"),
        ({"scope": b"tenant"}, TypeError, "not bytes"),
        ({"scope": ""}, ValueError, "non-empty str"),
        ({"tll": 5}, TypeError, "unexpected keyword argument 'tll'"),
    ],
)
def test_bad_arguments_fail_at_the_call(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        control(**kwargs)
    assert current_options() is DEFAULT


def test_positional_arguments_are_refused() -> None:
    with pytest.raises(TypeError):
        control(False)  # type: ignore[call-arg]


# -- nesting ---------------------------------------------------------------------------------


def test_inner_options_win_and_the_others_are_inherited() -> None:
    with control(ttl=60, scope="a", read=False):
        with control(ttl=5, write=False) as inner:
            assert inner == Options(read=False, write=False, ttl=5.0, scope="a")
            with control(scope="b"):
                assert current_options() == Options(read=False, write=False, ttl=5.0, scope="b")
            assert current_options() is inner
        assert current_options() == Options(read=False, ttl=60.0, scope="a")
    assert current_options() is DEFAULT


def test_an_explicit_none_or_true_overrides_the_outer_value() -> None:
    outer = control(ttl=60, max_age=10, scope="a", read=False)
    with outer, control(ttl=None, max_age=None, scope=None, read=True) as opts:
        assert opts is DEFAULT


# -- reuse and reentrancy ----------------------------------------------------------------


def test_one_object_used_twice_and_nested_in_itself() -> None:
    ctl = control(write=False)
    other = control(scope="x")
    for _ in range(2):
        with ctl:
            with ctl:
                with other, ctl:
                    assert current_options() == Options(write=False, scope="x")
                assert current_options() == Options(write=False)
            assert current_options() == Options(write=False)
        assert current_options() is DEFAULT


def test_the_same_object_follows_the_outer_options_it_is_entered_under() -> None:
    ctl = control(ttl=5)
    with ctl:
        assert current_options() == Options(ttl=5.0)
    with control(scope="a"), ctl:
        assert current_options() == Options(ttl=5.0, scope="a")
    with ctl:
        assert current_options() == Options(ttl=5.0)


def test_exit_without_enter_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not entered"):
        control(read=False).__exit__(None, None, None)


def test_one_object_active_in_many_threads_at_once() -> None:
    ctl = control(read=False)
    workers = 8
    barrier = threading.Barrier(workers, timeout=30)
    seen: list[tuple[Options, Options, Options]] = []
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            with ctl:
                barrier.wait()  # every thread is inside the same object's block
                with control(scope=f"t{i}"):
                    barrier.wait()
                    nested = current_options()
                    barrier.wait()
                inside = current_options()
                barrier.wait()
            seen.append((nested, inside, current_options()))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(n.scope or "" for n, _, _ in seen) == sorted(f"t{i}" for i in range(workers))
    assert all(n.read is False for n, _, _ in seen)
    assert all(inside == Options(read=False) and after is DEFAULT for _, inside, after in seen)


async def test_one_object_interleaved_across_asyncio_tasks() -> None:
    ctl = control(max_age=9)

    async def task(i: int) -> tuple[Options, Options, Options]:
        with control(scope=f"s{i}"):
            with ctl:
                for _ in range(i % 3 + 1):
                    await asyncio.sleep(0)  # other tasks enter and leave ctl meanwhile
                inside = current_options()
            await asyncio.sleep(0)
            after = current_options()
        return inside, after, current_options()

    results = await asyncio.gather(*(task(i) for i in range(20)))
    for i, (inside, after, outside) in enumerate(results):
        assert inside == Options(max_age=9.0, scope=f"s{i}")
        assert after == Options(scope=f"s{i}")
        assert outside is DEFAULT


# -- the decorator ---------------------------------------------------------------------------


def test_decorated_function_runs_with_the_options() -> None:
    @control(write=False)
    def answer(x: int) -> tuple[int, Options]:
        """Docstring kept."""
        return x + 1, current_options()

    assert answer(1) == (2, Options(write=False))
    assert answer.__name__ == "answer"
    assert answer.__doc__ == "Docstring kept."
    assert current_options() is DEFAULT


def test_decorated_method_and_exception() -> None:
    class Agent:
        @control(scope="agent")
        def run(self) -> Options:
            return current_options()

        @control(read=False)
        def fail(self) -> None:
            raise ValueError(current_options().read)

    assert Agent().run() == Options(scope="agent")
    with pytest.raises(ValueError, match="False"):
        Agent().fail()
    assert current_options() is DEFAULT


async def test_decorated_coroutine_keeps_the_options_across_awaits() -> None:
    @control(ttl=30)
    async def work() -> list[Options]:
        seen = [current_options()]
        await asyncio.sleep(0)
        seen.append(current_options())
        seen.append(await asyncio.create_task(read_later()))  # a task started inside
        seen.append(current_options())
        return seen

    async def read_later() -> Options:
        await asyncio.sleep(0)
        return current_options()

    async def undecorated() -> list[Options]:
        seen = []
        for _ in range(4):
            await asyncio.sleep(0)
            seen.append(current_options())
        return seen

    assert inspect.iscoroutinefunction(work)
    seen, others = await asyncio.gather(work(), undecorated())
    assert seen == [Options(ttl=30.0)] * 4
    assert others == [DEFAULT] * 4
    assert current_options() is DEFAULT


async def test_decorated_async_generator_sees_the_options_the_consumer_does_not() -> None:
    cleanup: list[Options] = []

    @control(scope="stream")
    async def tokens() -> AsyncIterator[Options]:
        try:
            for _ in range(3):
                await asyncio.sleep(0)
                yield current_options()
        finally:
            cleanup.append(current_options())

    assert inspect.isasyncgenfunction(tokens)
    produced, consumer = [], []
    async for opts in tokens():
        produced.append(opts)
        consumer.append(current_options())
    assert produced == [Options(scope="stream")] * 3
    assert consumer == [DEFAULT] * 3
    assert cleanup == [Options(scope="stream")]


async def test_decorated_async_generator_forwards_send_throw_and_close() -> None:
    log: list[tuple[str, Any, Options]] = []

    @control(read=False)
    async def echo() -> Any:
        received = None
        try:
            while True:
                try:
                    received = yield received
                    log.append(("sent", received, current_options()))
                except KeyError as exc:
                    log.append(("thrown", exc.args[0], current_options()))
                    received = "recovered"
        finally:
            log.append(("closed", None, current_options()))

    gen = echo()
    assert await gen.asend(None) is None
    assert await gen.asend("a") == "a"
    assert await gen.athrow(KeyError("k")) == "recovered"
    await gen.aclose()
    off = Options(read=False)
    assert log == [("sent", "a", off), ("thrown", "k", off), ("closed", None, off)]
    assert current_options() is DEFAULT


def test_decorated_generator_steps_with_the_options_and_keeps_its_return_value() -> None:
    @control(write=False)
    def steps() -> Generator[Options, None, str]:
        yield current_options()
        with control(scope="inner"):  # suspended inside its own block: must not leak
            yield current_options()
            yield current_options()
        yield current_options()
        return "done"

    def consume() -> Iterator[Options]:
        result = yield from steps()
        assert result == "done"

    produced, consumer = [], []
    for opts in consume():
        produced.append(opts)
        consumer.append(current_options())
    assert produced == [
        Options(write=False),
        Options(write=False, scope="inner"),
        Options(write=False, scope="inner"),
        Options(write=False),
    ]
    assert consumer == [DEFAULT] * 4


def test_decorated_generator_forwards_throw_and_close() -> None:
    log: list[tuple[str, Options]] = []

    @control(ttl=1)
    def gen() -> Generator[int, None, None]:
        try:
            yield 1
        except KeyError:
            log.append(("thrown", current_options()))
            yield 2
        finally:
            log.append(("closed", current_options()))

    g = gen()
    assert next(g) == 1
    assert g.throw(KeyError("k")) == 2
    g.close()
    assert log == [("thrown", Options(ttl=1.0)), ("closed", Options(ttl=1.0))]
    assert current_options() is DEFAULT


# -- where LangChain runs the cache --------------------------------------------------------


def _record(_: object) -> tuple[Options, int]:
    return current_options(), threading.get_ident()


def test_batch_worker_threads_see_the_enclosing_options() -> None:
    barrier = threading.Barrier(3, timeout=30)

    def record(x: int) -> tuple[Options, int]:
        barrier.wait()  # three inputs at once: three distinct pool threads
        return _record(x)

    with control(read=False, scope="batch"):
        results = RunnableLambda(record).batch([1, 2, 3], config={"max_concurrency": 3})
    expected = Options(read=False, scope="batch")
    assert [opts for opts, _ in results] == [expected] * 3
    threads = {ident for _, ident in results}
    assert len(threads) == 3
    assert threading.get_ident() not in threads
    assert current_options() is DEFAULT


def test_a_control_inside_one_batch_worker_stays_in_that_worker() -> None:
    barrier = threading.Barrier(2, timeout=30)

    def record(x: int) -> Options:
        if x == 0:
            with control(scope="zero"):
                barrier.wait()
                seen = current_options()
                barrier.wait()
                return seen
        barrier.wait()
        seen = current_options()  # while worker 0 is inside its own block
        barrier.wait()
        return seen

    with control(write=False):
        results = RunnableLambda(record).batch([0, 1])
        assert current_options() == Options(write=False)
    assert results == [Options(write=False, scope="zero"), Options(write=False)]


async def test_abatch_and_gather_tasks_see_the_enclosing_options() -> None:
    async def arecord(x: int) -> Options:
        await asyncio.sleep(0)
        return current_options()

    runnable = RunnableLambda(_record, afunc=arecord)
    sync_only = RunnableLambda(_record)  # abatch runs it in an executor thread
    expected = Options(max_age=60.0, scope="async")
    with control(max_age=60, scope="async"):
        via_abatch = await runnable.abatch([1, 2, 3])
        via_executor = await sync_only.abatch([1, 2, 3])
        via_gather = await asyncio.gather(*(runnable.ainvoke(i) for i in range(5)))
        via_tasks = await asyncio.gather(
            *(asyncio.create_task(sync_only.ainvoke(i)) for i in range(5))
        )
    assert via_abatch == [expected] * 3
    assert [opts for opts, _ in via_executor] == [expected] * 3
    assert via_gather == [expected] * 5
    assert [opts for opts, _ in via_tasks] == [expected] * 5
    assert current_options() is DEFAULT


def test_chain_invoked_with_a_runnable_config_sees_the_enclosing_options() -> None:
    def step(x: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        return {**x, "tags": config.get("tags"), "step": current_options()}

    chain = (
        RunnableLambda(step)
        | RunnableParallel(left=RunnableLambda(_record), right=RunnableLambda(_record))
    ).with_config(run_name="chain")
    config: RunnableConfig = {"tags": ["t"], "max_concurrency": 2, "configurable": {"k": 1}}
    with control(ttl=120, write=False):
        out = chain.invoke({"q": 1}, config=config)
        batched = chain.batch([{"q": 1}, {"q": 2}], config=config)
    expected = Options(write=False, ttl=120.0)
    for result in (out, *batched):
        assert result["left"][0] == result["right"][0] == expected
    assert current_options() is DEFAULT


class _RecordingCache(BaseCache):
    """A LangChain cache that records the options its calls run under (never hits)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Options]] = []
        self._lock = threading.Lock()

    def lookup(self, prompt: str, llm_string: str) -> None:
        with self._lock:
            self.seen.append(("lookup", current_options()))

    def update(self, prompt: str, llm_string: str, return_val: Sequence[Generation]) -> None:
        with self._lock:
            self.seen.append(("update", current_options()))

    def clear(self, **kwargs: Any) -> None:
        self.seen.clear()


async def test_chat_model_cache_calls_see_the_enclosing_options() -> None:
    cache = _RecordingCache()
    model = FakeListChatModel(responses=["a", "b", "c", "d", "e"], cache=cache)
    ctl = control(scope="tenant-a", read=False)

    @ctl
    async def serve() -> None:
        await model.abatch(["1", "2"])
        await asyncio.gather(model.ainvoke("3"), model.ainvoke("4"))

    with ctl:
        model.batch(["5", "6"])
    await serve()
    model.invoke("7")  # outside: the default
    expected = Options(read=False, scope="tenant-a")
    assert len(cache.seen) == 14
    assert cache.seen[:12] == [(kind, expected) for kind, _ in cache.seen[:12]]
    assert {kind for kind, _ in cache.seen} == {"lookup", "update"}
    assert cache.seen[12:] == [("lookup", DEFAULT), ("update", DEFAULT)]


async def test_decorated_async_generator_keeps_its_own_blocks_across_yields() -> None:
    @control(ttl=10)
    async def pages() -> AsyncIterator[Options]:
        yield current_options()
        with control(scope="page"):
            yield current_options()
            await asyncio.sleep(0)
            yield current_options()
        yield current_options()

    assert inspect.isasyncgenfunction(pages)  # LangChain tells generators apart this way
    gen = pages()
    produced, consumer = [], []
    with control(read=False):  # the view is taken at the first step: read=False, ttl=10
        produced.append(await gen.__anext__())
        consumer.append(current_options())
    with control(write=False):  # a later block of the consumer's stays the consumer's
        async for opts in gen:
            produced.append(opts)
            consumer.append(current_options())
    view = Options(read=False, ttl=10.0)
    paged = Options(read=False, ttl=10.0, scope="page")
    assert produced == [view, paged, paged, view]
    assert consumer == [Options(read=False)] + [Options(write=False)] * 3
    assert current_options() is DEFAULT


def _runs_fresh(script: str) -> None:
    """Run ``script`` in a fresh interpreter (no control() entered, no run seen yet): it
    must exit 0 and print "ok"."""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_the_first_control_block_of_a_process_is_honoured_by_memory_hits() -> None:
    """A memory hit skips the options read until a control() block was ever entered
    (gencache._control.IN_USE): in a fresh interpreter, hits before and after the first
    block, and in another thread, see the options in force."""
    script = """
import threading
from langchain_core.outputs import Generation
from gencache import InMemoryCache, control
from gencache._control import IN_USE
cache = InMemoryCache()
cache.update("p", "l", [Generation(text="x")])
assert not IN_USE and cache.lookup("p", "l") is not None
with control(read=False):
    assert cache.lookup("p", "l") is None
seen = []
def other():
    seen.append(cache.lookup("p", "l"))
    with control(scope="t"):
        seen.append(cache.lookup("p", "l"))
thread = threading.Thread(target=other)
thread.start(); thread.join()
assert seen[0] is not None and seen[1] is None, seen
assert cache.lookup("p", "l") is not None
stats = cache.stats()
assert (stats.hits, stats.bypassed, stats.misses) == (3, 1, 1), stats
print("ok")
"""
    _runs_fresh(script)


def test_the_first_control_block_and_run_of_a_process_are_honoured_by_memory_writes() -> None:
    """A memory write skips the options read until a control() block was ever entered
    (IN_USE), and the run-start read until a LangChain run was ever seen
    (gencache._runs.RUNS_SEEN): in a fresh interpreter, the first of each counts."""
    script = """
import time
from langchain_core.language_models import FakeListChatModel
from langchain_core.outputs import Generation
from gencache import InMemoryCache, control
from gencache._control import IN_USE
from gencache._runs import RUNS_SEEN
cache = InMemoryCache()
cache.update("p", "l", [Generation(text="x")])
assert not IN_USE and not RUNS_SEEN
with control(write=False):
    cache.update("q", "l", [Generation(text="y")])
assert cache.lookup("q", "l") is None and cache.stats().skipped == 1
with control(ttl=5):
    cache.update("r", "l", [Generation(text="z")])
assert cache.lookup("r", "l") is not None
class Slow(FakeListChatModel):
    def _call(self, *args, **kwargs):
        time.sleep(0.05)
        return super()._call(*args, **kwargs)
model = Slow(responses=["a"], cache=cache)
model.invoke("hi")
assert RUNS_SEEN
model.invoke("hi")
saved = cache.stats().saved
assert saved.calls == 2 and saved.seconds >= 0.05, saved  # "r" and the model's hit
print("ok")
"""
    _runs_fresh(script)
