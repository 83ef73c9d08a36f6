"""The in-process flights (gencache._flights): lock-free claims, waiters, lineages, races."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from langchain_core.outputs import Generation

from gencache._flights import Flight, Flights, owns

ANSWER = [Generation(text="the answer")]
T = TypeVar("T")


def _in_new_context(fn: Callable[..., T], *args: object) -> T:
    """Run ``fn`` in a fresh, empty context (as a new thread would) and return its result."""
    return contextvars.Context().run(fn, *args)


def test_an_uncontended_claim_leaves_nothing_behind_once_landed() -> None:
    flights = Flights(10.0)
    assert flights.claim("k", "me")
    assert len(flights) == 1
    flights.land("k", ANSWER)
    assert len(flights) == 0
    assert flights.claim("k", "me")  # a new flight after the landing


def test_a_second_claim_of_the_same_key_fails_and_join_says_whose_it_is() -> None:
    flights = Flights(10.0)
    assert flights.claim("k", "owner")
    assert not flights.claim("k", "owner")  # its own: join tells it so
    flight, mine, new = flights.join("k", "owner")
    assert (mine, new) == (True, False)
    assert not _in_new_context(flights.claim, "k", "other")
    flight2, mine2, new2 = _in_new_context(flights.join, "k", "other")
    assert flight2 is flight
    assert (mine2, new2) == (False, False)


def test_a_waiter_turns_the_claim_into_a_flight_and_the_landing_wakes_it() -> None:
    flights = Flights(30.0)
    assert flights.claim("k", "owner")
    got: list[object] = []

    def waiter() -> None:
        flight = flights.peek("k")
        assert isinstance(flight, Flight)
        got.append(flight.wait(30.0, flights.lock))

    thread = threading.Thread(target=waiter)
    thread.start()
    deadline = time.monotonic() + 30
    while not isinstance(flights._flights.get("k"), Flight) and time.monotonic() < deadline:
        time.sleep(0.001)
    flights.land("k", ANSWER)
    thread.join(30)
    assert got == [ANSWER]
    assert len(flights) == 0


def test_an_abandoned_claim_is_replaced_and_swept() -> None:
    flights = Flights(0.05)
    assert flights.claim("k", "gone")
    time.sleep(0.1)
    assert flights.peek("k") is None  # abandoned: nobody waits for it
    _, mine, new = _in_new_context(flights.join, "k", "next")
    assert mine
    assert new
    for i in range(1_100):  # past the first sweep
        flights.claim(f"other {i}", "gone")
    time.sleep(0.1)
    for i in range(1_100):
        flights.claim(f"later {i}", "gone")
    assert len(flights) <= 2_048


def test_fail_owner_drops_its_claims_and_fails_its_flights() -> None:
    flights = Flights(30.0)
    assert flights.claim("claimed", "owner")
    flights.join("joined", "owner")
    assert _in_new_context(flights.claim, "someone else's", "other")
    waited = flights.peek("joined")
    assert waited is not None
    assert flights.fail_owner("owner") == 2
    assert waited.state != 0
    assert not waited.landed
    assert len(flights) == 1  # the other owner's claim stays


def test_a_copy_of_the_claimers_context_owns_the_claim_and_other_contexts_do_not() -> None:
    flights = Flights(30.0)

    def claim_then_check() -> tuple[bool, bool]:
        assert flights.claim("k", "owner")
        flight = flights.peek("k")
        assert flight is not None
        child = contextvars.copy_context()  # a nested call's context (a task, a thread)
        return child.run(owns, flight, "child"), _in_new_context(owns, flight, "sibling")

    assert _in_new_context(claim_then_check) == (True, False)


async def test_gathered_tasks_each_claim_with_a_lineage_of_their_own() -> None:
    # The parent task claimed something first: its children inherit its lineage, and
    # must still wait for one another (each child claims under a lineage of its own).
    flights = Flights(30.0)
    assert flights.claim("parent's", ("task", "parent"))
    flights.land("parent's", ANSWER)

    async def child(n: int) -> bool:
        owner = ("task", n)
        if flights.claim("k", owner):
            await asyncio.sleep(0.05)
            flights.land("k", ANSWER)
            return True
        flight, mine, _ = flights.join("k", owner)
        assert not mine
        assert await flight.await_(30.0, flights.lock) == ANSWER
        return False

    owners = await asyncio.gather(*(child(n) for n in range(16)))
    assert owners.count(True) == 1


def test_claims_and_landings_race_without_losing_a_waiter() -> None:
    # Many threads hammer a few keys: every lookup either owns the key or gets its
    # owner's answer (or, when the landing beat the upgrade, finds no flight and would
    # read the store); no waiter is ever left to time out.
    flights = Flights(30.0)
    errors: list[BaseException] = []
    timed_out = waits = 0
    lock = threading.Lock()

    def worker(seed: int) -> None:
        nonlocal timed_out, waits
        try:
            for i in range(2_000):
                key = (seed + i) % 5
                if flights.claim(key, threading.get_ident()):
                    time.sleep(0)  # let the others find the claim
                    flights.land(key, ANSWER)
                    continue
                flight = flights.peek(key)
                if flight is None or owns(flight, threading.get_ident()):
                    continue
                start = time.monotonic()
                value = flight.wait(30.0, flights.lock)
                with lock:
                    waits += 1
                if value is None and time.monotonic() - start >= 29:
                    with lock:
                        timed_out += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    assert timed_out == 0
    assert waits > 0  # the race was run, not avoided
    assert len(flights) == 0


def test_a_landing_that_was_waited_for_is_remembered_for_a_second() -> None:
    flights = Flights(30.0)
    assert flights.claim("alone", "owner")
    flights.land("alone", ANSWER)
    assert not flights.recently_landed("alone")  # nobody waited: nothing to re-read for
    assert flights.claim("k", "owner")
    assert flights.peek("k") is not None  # a waiter made it a Flight
    flights.land("k", ANSWER)
    assert flights.recently_landed("k")
    flights.clear()
    assert not flights.recently_landed("k")
    flights.join("failed", "owner")
    flights.land("failed", None)
    assert not flights.recently_landed("failed")  # a failure left no answer to read
