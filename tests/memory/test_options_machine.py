"""A hypothesis state machine for per-call options: ttl, max_age, scope, read and write.

The cache is compared, step by step, with a plain reference model. Written against the
public API only, so that it can run against every backend that takes an injectable
``timer`` (parametrise ``machine_for`` over the backends).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.outputs import Generation

from gencache import GenCache, InMemoryCache, control
from tests.helpers import FakeClock


def _chat(reply_id: str, metadata: dict[str, Any]) -> str:
    """A serialized chat history whose AI message differs only in fields never sent."""
    return dumps(
        [
            HumanMessage("Hi"),
            AIMessage("Hello!", id=reply_id, response_metadata=metadata),
            HumanMessage("What is 2 + 2?"),
        ]
    )


# Plain prompts, and two chat prompts that are the same conversation (one canonical key).
CHAT_A, CHAT_B = _chat("run-1", {"model": "m", "ms": 310}), _chat("run-2", {"ms": 290})
PROMPTS = ["prompt 0", "prompt 1", CHAT_A, CHAT_B]
GROUP = {CHAT_B: CHAT_A}  # what canonical keys make equal
LLMS = ["llm 0", "llm 1"]
SCOPES = [None, "tenant-a", "tenant-b"]

Key = tuple[str | None, str, str]


class Reference:
    """What the cache should do, in the plainest code: every entry with its own deadline."""

    def __init__(self, maxsize: int | None, ttl: float | None, lru: bool, canonical: bool):
        self.maxsize, self.ttl, self.lru, self.canonical = maxsize, ttl, lru, canonical
        # key -> (text, written_at, deadline or None), in eviction order.
        self.entries: OrderedDict[Key, tuple[str, float, float | None]] = OrderedDict()
        self.counts = dict.fromkeys(
            ("hits", "misses", "updates", "evictions", "expirations", "bypassed", "skipped"), 0
        )

    def key(self, scope: str | None, prompt: str, llm: str) -> Key:
        return (scope, GROUP.get(prompt, prompt) if self.canonical else prompt, llm)

    def _expired(self, key: Key, now: float) -> bool:
        deadline = self.entries[key][2]
        return deadline is not None and now >= deadline

    def purge(self, now: float) -> None:
        for key in [k for k in self.entries if self._expired(k, now)]:
            del self.entries[key]
            self.counts["expirations"] += 1

    def lookup(self, key: Key, now: float, read: bool, max_age: float | None) -> str | None:
        if not read:
            self.counts["bypassed"] += 1
            return None
        if key in self.entries and self._expired(key, now):
            del self.entries[key]
            self.counts["expirations"] += 1
        entry = self.entries.get(key)
        if entry is None or (max_age is not None and now - entry[1] >= max_age):
            self.counts["misses"] += 1
            return None
        self.counts["hits"] += 1
        if self.lru:
            self.entries.move_to_end(key)
        return entry[0]

    def update(self, key: Key, text: str, now: float, ttl: float | None, write: bool) -> None:
        if not write:
            self.counts["skipped"] += 1
            return
        self.purge(now)
        ttl = self.ttl if ttl is None else ttl
        entry = (text, now, None if ttl is None else now + ttl)
        if key in self.entries:
            self.entries[key] = entry
            if self.lru:
                self.entries.move_to_end(key)
        else:
            if self.maxsize is not None and len(self.entries) >= self.maxsize:
                self.entries.popitem(last=False)
                self.counts["evictions"] += 1
            self.entries[key] = entry
        self.counts["updates"] += 1

    def clear(self, scope: str | None) -> None:
        for key in [k for k in self.entries if scope is None or k[0] == scope]:
            del self.entries[key]


def machine_for(make: Any) -> type[RuleBasedStateMachine]:
    """A state machine over caches built by ``make(**options)``."""

    class OptionsMachine(RuleBasedStateMachine):
        cache: GenCache
        model: Reference

        def __init__(self) -> None:
            super().__init__()
            self.clock = FakeClock()
            self.serial = 0

        @initialize(
            maxsize=st.none() | st.integers(1, 4),
            ttl=st.none() | st.sampled_from([1.0, 2.5]),
            policy=st.sampled_from(["fifo", "lru"]),
            canonical=st.booleans(),
        )
        def start(
            self, maxsize: int | None, ttl: float | None, policy: str, canonical: bool
        ) -> None:
            self.cache = make(
                maxsize=maxsize, ttl=ttl, policy=policy, timer=self.clock, canonical_keys=canonical
            )
            self.model = Reference(maxsize, ttl, policy == "lru", canonical)

        @rule(
            prompt=st.sampled_from(PROMPTS),
            llm=st.sampled_from(LLMS),
            scope=st.sampled_from(SCOPES),
            ttl=st.none() | st.sampled_from([0.5, 1.0, 4.0]),
            write=st.booleans() | st.just(True),
        )
        def update(
            self, prompt: str, llm: str, scope: str | None, ttl: float | None, write: bool
        ) -> None:
            self.serial += 1
            text = f"value {self.serial}"
            with control(scope=scope, ttl=ttl, write=write):
                self.cache.update(prompt, llm, [Generation(text=text)])
            self.model.update(self.model.key(scope, prompt, llm), text, self.clock.now, ttl, write)

        @rule(
            prompt=st.sampled_from(PROMPTS),
            llm=st.sampled_from(LLMS),
            scope=st.sampled_from(SCOPES),
            read=st.booleans() | st.just(True),
            max_age=st.none() | st.sampled_from([0.5, 2.0]),
        )
        def lookup(
            self, prompt: str, llm: str, scope: str | None, read: bool, max_age: float | None
        ) -> None:
            with control(scope=scope, read=read, max_age=max_age):
                got = self.cache.lookup(prompt, llm)
            key = self.model.key(scope, prompt, llm)
            expected = self.model.lookup(key, self.clock.now, read, max_age)
            assert (None if got is None else got[0].text) == expected

        @rule()
        def lookup_everything(self) -> None:
            # Finds an entry that should be gone wherever it is (evicted, expired, cleared).
            for scope in SCOPES:
                for prompt in PROMPTS:
                    for llm in LLMS:
                        self.lookup(prompt, llm, scope, True, None)

        @rule(prompt=st.sampled_from(PROMPTS), scope=st.sampled_from(SCOPES))
        def empty_answer(self, prompt: str, scope: str | None) -> None:
            with control(scope=scope):
                self.cache.update(prompt, LLMS[0], [])
            self.model.counts["skipped"] += 1

        @rule(seconds=st.sampled_from([0.0, 0.5, 1.0, 3.0]))
        def advance(self, seconds: float) -> None:
            self.clock.advance(seconds)

        @rule(scope=st.sampled_from(SCOPES))
        def clear(self, scope: str | None) -> None:
            self.cache.clear(scope=scope)
            self.model.clear(scope)

        # A rule, not an invariant: len() and stats() purge every expired entry, and
        # checking them after every step would hide bugs in the lazy expiry paths.
        @rule()
        def same_size_and_counts(self) -> None:
            self.model.purge(self.clock.now)
            stats = self.cache.stats()
            assert len(self.cache) == len(self.model.entries) == stats.size
            got = {k: getattr(stats, k) for k in self.model.counts}
            assert got == self.model.counts

        def teardown(self) -> None:
            if hasattr(self, "cache"):
                self.cache.clear()

    return OptionsMachine


def test_memory_cache_with_per_call_options_matches_the_reference() -> None:
    machine = machine_for(InMemoryCache)
    machine.TestCase.settings = settings(max_examples=200, stateful_step_count=50, deadline=None)
    machine.TestCase().runTest()
