"""An in-memory hit is the entry's own list, read-only: shared by its hits, never changed."""

from __future__ import annotations

import copy
import pickle
import threading

import pytest
from langchain_core.caches import InMemoryCache as LangChainCache
from langchain_core.language_models import FakeListChatModel, FakeListLLM
from langchain_core.messages import HumanMessage
from langchain_core.outputs import Generation

from gencache import InMemoryCache, control
from tests.helpers import gens

P, L = "What is the capital of France?", "model='m' temperature=0"


@pytest.mark.parametrize("policy", ["fifo", "lru"])
@pytest.mark.parametrize("ttl", [None, 60.0])
def test_hits_share_one_read_only_list(policy: str, ttl: float | None) -> None:
    cache = InMemoryCache(policy=policy, ttl=ttl)
    cache.update(P, L, gens("a", 2))
    first, second = cache.lookup(P, L), cache.lookup(P, L)
    # Where hits take no lock (FIFO, no ttl) they share one list; where they take it, each
    # gets its own read-only list (a kept one would let a hit skip the lock).
    shared = policy == "fifo" and ttl is None
    assert (first is second) is shared
    assert isinstance(first, list)
    assert first == gens("a", 2)
    with pytest.raises(TypeError, match=r"read-only .* list\(hit\)"):
        first.append(Generation(text="x"))
    with pytest.raises(TypeError):
        first[0] = Generation(text="x")
    assert cache.lookup(P, L) == gens("a", 2)
    with control(max_age=60):  # the locked path returns the same list where it is kept
        assert (cache.lookup(P, L) is first) is shared


def test_the_first_per_call_ttl_makes_every_hit_take_the_lock() -> None:
    # A FIFO cache built without ttl switches to expiring entries at its first write with a
    # per-call ttl: from then on no hit may skip the lock, so no kept list may remain.
    clock_now = [0.0]
    cache = InMemoryCache(timer=lambda: clock_now[0])
    cache.update(P, L, gens("old"))
    cache.update("q", L, gens("q"))
    kept = cache.lookup(P, L)
    assert cache.lookup(P, L) is kept  # kept: hits take no lock yet
    assert cache.lookup("q", L) is cache.lookup("q", L)
    with control(ttl=5):
        cache.update("other", L, gens("brief"))
        cache.update(P, L, gens("brief too"))
    assert cache.lookup(P, L) == gens("brief too")
    assert cache.lookup("q", L) is not cache.lookup("q", L)  # "q" too takes the lock now
    assert cache.lookup("q", L) == gens("q")
    clock_now[0] = 5.0
    assert cache.lookup(P, L) is None  # expired: the hit took the lock and saw it
    assert cache.lookup("other", L) is None
    cache.update(P, L, gens("again"))
    assert cache.lookup(P, L) is not cache.lookup(P, L)  # no kept list any more


def test_a_rewrite_gives_new_hits_and_leaves_the_old_list_as_it_was() -> None:
    cache = InMemoryCache()
    cache.update(P, L, gens("old"))
    old = cache.lookup(P, L)
    cache.update(P, L, gens("new"))
    assert old == gens("old")  # a reader holding a hit keeps a consistent answer
    assert cache.lookup(P, L) == gens("new")
    with control(ttl=30):  # the per-call ttl path (deadlines) too
        cache.update(P, L, gens("newer"))
    assert old == gens("old")
    assert cache.lookup(P, L) == gens("newer")


def test_copies_and_pickles_are_plain_lists() -> None:
    cache = InMemoryCache()
    cache.update(P, L, gens("a", 2))
    hit = cache.lookup(P, L)
    assert hit is not None
    for other in (list(hit), copy.copy(hit), copy.deepcopy(hit), pickle.loads(pickle.dumps(hit))):
        assert type(other) is list
        assert other == hit
        other.append(Generation(text="mine"))
    assert hit + [Generation(text="x")] == [*gens("a", 2), Generation(text="x")]  # noqa: RUF005
    assert cache.lookup(P, L) == gens("a", 2)


def test_langchain_models_hit_the_read_only_list() -> None:
    # Both of LangChain's cache paths (chat models and LLMs), twice each, with ours and
    # LangChain's own cache: the same answers.
    for cache in (InMemoryCache(), LangChainCache()):
        chat = FakeListChatModel(responses=["Paris", "Rome"], cache=cache)
        assert [chat.invoke([HumanMessage(P)]).content for _ in range(2)] == ["Paris"] * 2
        llm = FakeListLLM(responses=["Paris", "Rome"], cache=cache)
        assert [llm.invoke(P) for _ in range(2)] == ["Paris"] * 2
        assert llm.generate([P, P]).generations[0][0].text == "Paris"


def test_threads_hitting_one_entry_while_it_is_rewritten() -> None:
    cache = InMemoryCache()
    answers = [gens(f"v{i}") for i in range(50)]
    cache.update(P, L, answers[0])
    seen: list[list[Generation]] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            hit = cache.lookup(P, L)
            assert hit is not None
            seen.append(list(hit))

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    for answer in answers[1:]:
        cache.update(P, L, answer)
    stop.set()
    for thread in readers:
        thread.join()
    assert seen
    assert all(hit in answers for hit in seen)  # whole answers only, never a mix
    assert cache.lookup(P, L) == answers[-1]


def test_threads_churning_a_small_cache_only_see_whole_answers_of_their_key() -> None:
    # Most hits here are the first of their entry, which builds the shared list under the
    # lock while other threads evict and rewrite entries.
    cache = InMemoryCache(maxsize=20)
    wrong: list[tuple[int, list[Generation]]] = []

    def work(seed: int) -> None:
        for n in range(3_000):
            i = (seed * 7 + n * 13) % 60
            hit = cache.lookup(f"p{i}", L)
            if hit is None:
                cache.update(f"p{i}", L, gens(f"{i}-{n % 3}"))
            elif hit not in (gens(f"{i}-0"), gens(f"{i}-1"), gens(f"{i}-2")):
                wrong.append((i, list(hit)))

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not wrong
    stats = cache.stats()
    assert stats.hits + stats.misses == 12_000
    assert stats.size == 20
