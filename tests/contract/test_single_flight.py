"""Single-flight: identical concurrent misses pay once, on every backend.

Provider calls are counted by a real ``BaseChatModel`` going through LangChain's cache
path. Nothing here asserts a latency: where the point is "not serial", the bound is a
multiple of the model's own delay far below what serial calls would take.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import CodeType, FrameType
from typing import Any

import pytest
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult
from pydantic import PrivateAttr

from gencache import control
from gencache._flights import Flight
from tests.chat_models import CountingChatModel, ProviderError
from tests.conftest import Factory
from tests.helpers import gens

L = "model='m'"


def test_batch_of_identical_prompts_pays_once(make_cache: Factory) -> None:
    cache = make_cache(single_flight=True)
    model = CountingChatModel(cache=cache, delay=0.3)
    results = model.batch(["same"] * 64)
    assert model.calls == 1
    assert {r.content for r in results} == {"answer to same"}
    stats = cache.stats()
    assert stats.coalesced >= 1
    assert stats.hits + stats.misses == 64
    assert stats.misses == 1


async def test_abatch_of_identical_prompts_pays_once(make_cache: Factory) -> None:
    cache = make_cache(single_flight=True)
    model = CountingChatModel(cache=cache, delay=0.3)
    results = await model.abatch(["same"] * 64)
    assert model.calls == 1
    assert {r.content for r in results} == {"answer to same"}


async def test_gather_of_identical_ainvokes_pays_once(make_cache: Factory) -> None:
    cache = make_cache(single_flight=True)
    model = CountingChatModel(cache=cache, delay=0.3)
    results = await asyncio.gather(*(model.ainvoke("same") for _ in range(64)))
    assert model.calls == 1
    assert {r.content for r in results} == {"answer to same"}
    assert cache.stats().coalesced == 63


async def test_distinct_prompts_pay_once_each(make_cache: Factory) -> None:
    cache = make_cache(single_flight=True)
    model = CountingChatModel(cache=cache, delay=0.3)
    prompts = [f"question {i}" for i in range(16)] * 8
    results = await asyncio.gather(*(model.ainvoke(p) for p in prompts))
    assert model.calls == 16
    assert [r.content for r in results] == [f"answer to {p}" for p in prompts]


async def test_an_owner_failure_releases_the_waiters_who_then_pay_together(
    make_cache: Factory,
) -> None:
    # Baseline: one uncached call of this model on this machine, now.
    probe = CountingChatModel(delay=0.3)
    start = time.monotonic()
    await probe.ainvoke("baseline")
    one_call = time.monotonic() - start

    cache = make_cache(single_flight=True)
    model = CountingChatModel(cache=cache, delay=0.3, fail_first=1)
    start = time.monotonic()
    results = await asyncio.gather(
        *(model.ainvoke("same") for _ in range(64)), return_exceptions=True
    )
    elapsed = time.monotonic() - start
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1
    assert isinstance(failures[0], ProviderError)
    answers = [r for r in results if r not in failures]
    assert all(getattr(r, "content", None) == "answer to same" for r in answers)
    assert model.calls == 64  # 1 failed, then 63 of their own, together
    # Serially they would take 64 calls; together, about two. Generous: 16 calls' time.
    assert elapsed < 16 * one_call + 5


class WaitingFailingModel(CountingChatModel):
    """Its failing calls raise only once ``waiters`` other threads wait for their flight.

    So every waiter has joined the flight before the owner fails, whatever the machine's
    speed: the count of provider calls after the failure is exact.
    """

    waiters: int = 0

    def _answer(self, messages: list[BaseMessage], number: int) -> ChatResult:
        if number <= self.fail_first:
            _wait_until_threads_wait_in_a_flight(self.waiters)
        return super()._answer(messages, number)


def _wait_until_threads_wait_in_a_flight(count: int) -> None:
    """Block until ``count`` threads are blocked in :meth:`Flight.wait` (at most 60 s)."""
    code = Flight.wait.__code__
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        waiting = sum(_runs(top, code) for top in sys._current_frames().values())
        if waiting >= count:
            return
        time.sleep(0.005)
    msg = f"fewer than {count} threads waited for the flight within 60 s"
    raise AssertionError(msg)


def _runs(frame: FrameType | None, code: CodeType) -> bool:
    """Whether ``code`` is on the stack that ``frame`` tops."""
    while frame is not None:
        if frame.f_code is code:
            return True
        frame = frame.f_back
    return False


def test_a_thread_owner_failure_releases_waiters(make_cache: Factory) -> None:
    cache = make_cache(single_flight=True, flight_timeout=60)
    model = WaitingFailingModel(cache=cache, delay=0.0, fail_first=1, waiters=7)
    barrier = threading.Barrier(8)

    def ask() -> str:
        barrier.wait()
        try:
            return str(model.invoke("same").content)
        except ProviderError:
            return "failed"

    start = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: ask(), range(8)))
    assert results.count("failed") == 1
    assert results.count("answer to same") == 7
    assert model.calls == 8  # 1 failed owner, then each of the 7 released waiters once
    stats = cache.stats()
    assert stats.coalesced == 0  # nobody was answered by the failed call
    assert time.monotonic() - start < 30  # released at once, not after flight_timeout


class SignallingFailingModel(WaitingFailingModel):
    """A :class:`WaitingFailingModel` that tells, once its first call has begun."""

    _calling: threading.Event = PrivateAttr(default_factory=threading.Event)

    def _answer(self, messages: list[BaseMessage], number: int) -> ChatResult:
        if number == 1:
            self._calling.set()
        return super()._answer(messages, number)


async def test_a_sync_owner_inside_a_task_that_fails_releases_its_waiters(
    make_cache: Factory,
) -> None:
    # model.invoke() inside an async def (or a notebook cell): the cache call is
    # synchronous, the LangChain run that fails is seen from the task.
    cache = make_cache(single_flight=True, flight_timeout=60)
    model = SignallingFailingModel(cache=cache, delay=0.0, fail_first=1, waiters=1)
    answers: list[str] = []

    def waiter() -> None:
        assert model._calling.wait(60)
        answers.append(str(model.invoke("same").content))

    thread = threading.Thread(target=waiter)
    thread.start()
    start = time.monotonic()
    with pytest.raises(ProviderError):
        model.invoke("same")  # blocks this task's event loop, as such code does
    await asyncio.to_thread(thread.join, 90)
    assert answers == ["answer to same"]
    assert model.calls == 2  # the failed owner, then the released waiter
    assert time.monotonic() - start < 30  # released at the failure, not at flight_timeout


def test_the_owner_asking_again_is_not_blocked_by_itself(make_cache: Factory) -> None:
    cache = make_cache(single_flight=True, flight_timeout=30)
    assert cache.lookup("p", L) is None  # this thread now owns the flight
    start = time.monotonic()
    assert cache.lookup("p", L) is None  # the same thread again: no wait for itself
    assert time.monotonic() - start < 10
    cache.update("p", L, gens("v"))
    assert cache.lookup("p", L) == gens("v")


async def test_a_task_owner_asking_again_is_not_blocked_by_itself(make_cache: Factory) -> None:
    cache = make_cache(single_flight=True, flight_timeout=30)
    assert await cache.alookup("p", L) is None  # this task now owns the flight
    start = time.monotonic()
    assert await cache.alookup("p", L) is None  # the same task again: no wait for itself
    assert time.monotonic() - start < 10
    await cache.aupdate("p", L, gens("v"))
    assert await cache.alookup("p", L) == gens("v")


class AsksItselfFirst(CountingChatModel):
    """Its first provider call asks the same model the same question (a nested ``ainvoke``,
    which LangChain runs in a task of its own) before answering."""

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.calls == 0:
            self._count()
            inner = await self.ainvoke(messages)
            return self._answer([*messages, inner], 1)
        return await super()._agenerate(messages, stop, run_manager, **kwargs)


async def test_a_nested_ainvoke_of_the_owners_own_request_is_not_blocked_by_it(
    make_cache: Factory,
) -> None:
    # The nested call runs in a child task of the owner's call: it owns the flight too.
    # Blocked by its own flight it would wait the whole flight_timeout (60 s).
    cache = make_cache(single_flight=True, flight_timeout=60)
    model = AsksItselfFirst(cache=cache, delay=0.05)
    start = time.monotonic()
    answer = await model.ainvoke("same")
    assert time.monotonic() - start < 30
    assert model.calls == 2  # the outer call and the nested one, each once
    assert answer.content
    assert (await model.ainvoke("same")).content == answer.content  # stored: a hit
    assert model.calls == 2


def test_a_waiter_never_waits_longer_than_flight_timeout(make_cache: Factory) -> None:
    cache = make_cache(single_flight=True, flight_timeout=0.5)
    assert cache.lookup("p", L) is None  # owner that never updates
    result: list[object] = []
    waiter = threading.Thread(target=lambda: result.append(cache.lookup("p", L)))
    waiter.start()
    waiter.join(60)
    assert not waiter.is_alive()
    assert result == [None]


def test_control_read_false_opts_out_of_coalescing(make_cache: Factory) -> None:
    cache = make_cache(single_flight=True)
    model = CountingChatModel(cache=cache, delay=0.2)
    with control(read=False):
        results = model.batch(["same"] * 4)
    assert model.calls == 4
    assert {r.content for r in results} == {"answer to same"}
    stats = cache.stats()
    assert (stats.coalesced, stats.bypassed) == (0, 4)


async def test_control_read_false_opts_out_of_coalescing_in_tasks(make_cache: Factory) -> None:
    cache = make_cache(single_flight=True)
    model = CountingChatModel(cache=cache, delay=0.2)
    with control(read=False):
        await asyncio.gather(*(model.ainvoke("same") for _ in range(4)))
    assert model.calls == 4
    assert cache.stats().coalesced == 0


def test_control_write_false_opts_out_of_coalescing(make_cache: Factory) -> None:
    cache = make_cache(single_flight=True)
    model = CountingChatModel(cache=cache, delay=0.2)
    with control(write=False):
        model.batch(["same"] * 4)
    assert model.calls == 4


async def test_the_event_loop_is_not_blocked_while_waiting(make_cache: Factory) -> None:
    cache = make_cache(single_flight=True)
    model = CountingChatModel(cache=cache, delay=0.5)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    await asyncio.gather(*(model.ainvoke("same") for _ in range(8)))
    task.cancel()
    assert model.calls == 1
    assert ticks > 5  # the loop kept running while 7 tasks waited


def test_single_flight_arguments_are_checked(make_cache: Factory) -> None:
    with pytest.raises(TypeError, match="single_flight"):
        make_cache(single_flight="yes")
    with pytest.raises(ValueError, match="flight_timeout"):
        make_cache(single_flight=True, flight_timeout=0)


def test_misses_never_updated_leave_no_flights_behind(make_cache: Factory) -> None:
    # A lookup that misses opens a flight; with no update after it (a caller that only
    # looks), the flight is abandoned after flight_timeout and swept later: the flights
    # kept stay bounded, and one context's list of owned flights too.
    cache = make_cache(single_flight=True, flight_timeout=0.05)
    flights = cache._flight.flights  # type: ignore[attr-defined]  # no public view of them
    for i in range(1_500):
        assert cache.lookup(f"looked at only {i}", L) is None
    time.sleep(0.1)  # every one of those is abandoned now
    for i in range(1_500):
        assert cache.lookup(f"looked at later {i}", L) is None
    assert len(flights) <= 2_048  # swept at 1,024 + 1: what is left is at most the rest
    cache.update("looked at later 0", L, gens("an answer after all"))
    assert cache.lookup("looked at later 0", L) == gens("an answer after all")
