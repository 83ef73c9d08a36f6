"""Hostile and bad input on every backend: odd arguments, huge and odd values.

* A writer in the shared Redis namespace: tests/redis/test_namespace_writer.py.
* Bad arguments on every backend (tests/contract/test_contract.py covers ``None``,
  ``bytes``, ``int`` and ``list`` key parts and some bad ``return_val``): more types, the
  async twins, megabyte prompts, 10,000 generations, NUL and lone surrogates in the
  llm_string and the text. Every backend caches them correctly or raises the same
  ``TypeError`` with the same message.
* Values the stored format cannot hold as they are (docs/codec.md): SQLite and Redis
  store their JSON form (a tuple comes back as a list) or skip the write with a warning
  (an object with no JSON form, a split surrogate pair, an answer over 16 MiB), never
  failing the call and never altering a value; ``InMemoryCache`` keeps the objects.
* A Redis password never shown, and a Redis export owner-only: tests/redis/test_secrets.py;
  a SQLite export over an existing file: tests/sqlite/test_owner_only_export.py.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult, Generation

from gencache import GenCache
from gencache.codec import MAX_PAYLOAD_BYTES
from gencache.errors import BackendError
from tests.conftest import Factory
from tests.helpers import gens

pytestmark = pytest.mark.fault

P, L = "What is the capital of France?", "model='m' temperature=0"


# -- bad arguments, on every backend ------------------------------------------------------

NOT_STR = {
    "bytearray": bytearray(b"p"),
    "memoryview": memoryview(b"p"),
    "float-nan": math.nan,
    "generation": Generation(text="p"),
    "dict": {"prompt": "p"},
    "tuple": ("p",),
}


@pytest.mark.parametrize("bad", NOT_STR.values(), ids=NOT_STR.keys())
@pytest.mark.parametrize("position", ["prompt", "llm_string"])
async def test_non_string_key_parts_raise_the_same_type_error(
    make_cache: Factory, bad: Any, position: str
) -> None:
    cache = make_cache()
    prompt, llm_string = (bad, L) if position == "prompt" else (P, bad)
    message = f"{position} must be a str, not {type(bad).__name__}"
    with pytest.raises(TypeError) as info:
        cache.lookup(prompt, llm_string)
    assert str(info.value) == message
    with pytest.raises(TypeError) as info:
        cache.update(prompt, llm_string, gens("x"))
    assert str(info.value) == message
    with pytest.raises(TypeError) as info:
        await cache.alookup(prompt, llm_string)
    assert str(info.value) == message
    with pytest.raises(TypeError) as info:
        await cache.aupdate(prompt, llm_string, gens("x"))
    assert str(info.value) == message
    stats = cache.stats()
    assert (stats.lookups, stats.updates, stats.size) == (0, 0, 0)


def _generator() -> Iterator[Generation]:
    yield Generation(text="x")


NOT_GENERATIONS: dict[str, tuple[Any, str]] = {
    # name: (return_val, the exact TypeError message every backend gives)
    "dict": (
        {"g": Generation(text="x")},
        "return_val must be a sequence of langchain_core.outputs.Generation, not dict",
    ),
    "set": (set(), "return_val must be a sequence of langchain_core.outputs.Generation, not set"),
    "frozenset": (
        frozenset(),
        "return_val must be a sequence of langchain_core.outputs.Generation, not frozenset",
    ),
    "generator": (
        _generator(),
        "return_val must be a sequence of langchain_core.outputs.Generation, not generator",
    ),
    "bytearray": (
        bytearray(b"ab"),
        "return_val must contain only langchain_core.outputs.Generation objects, found int",
    ),
    "range": (
        range(2),
        "return_val must contain only langchain_core.outputs.Generation objects, found int",
    ),
    "nested-list": (
        [gens("x")],
        "return_val must contain only langchain_core.outputs.Generation objects, found list",
    ),
    "messages": (
        [AIMessage(content="x")],
        "return_val must contain only langchain_core.outputs.Generation objects, found AIMessage",
    ),
    "none-inside": (
        [Generation(text="x"), None],
        "return_val must contain only langchain_core.outputs.Generation objects, found NoneType",
    ),
}


@pytest.mark.parametrize(("bad", "message"), NOT_GENERATIONS.values(), ids=NOT_GENERATIONS.keys())
async def test_return_val_not_a_sequence_of_generations(
    make_cache: Factory, bad: Any, message: str
) -> None:
    cache = make_cache()
    with pytest.raises(TypeError) as info:
        cache.update(P, L, bad)
    assert str(info.value) == message
    with pytest.raises(TypeError) as info:
        await cache.aupdate(P, L, bad)
    assert str(info.value) == message
    assert cache.lookup(P, L) is None
    assert cache.stats().updates == 0


def _persistent(cache: GenCache) -> bool:
    """Whether ``cache`` stores the codec's document (SQLite, Redis), not the objects."""
    return type(cache).__name__ != "InMemoryCache"


# name: (a generation_info value, what SQLite and Redis give back: its JSON form)
JSON_FORMS: dict[str, tuple[Any, Any]] = {
    "tuple": ((2024, 1, 1), [2024, 1, 1]),
    "set": ({30, 1, 200}, [1, 200, 30]),  # sorted by JSON text: bytes never depend on hashing
    "datetime": (datetime(2024, 5, 1, 12, tzinfo=timezone.utc), "2024-05-01T12:00:00Z"),
    "non-str-key": ({1: "a"}, {"1": "a"}),
}
# generation_info values with no faithful JSON form: SQLite and Redis skip the write.
NO_JSON_FORM: dict[str, Any] = {
    "object": object(),
    "nan": math.nan,
    "keys-that-collide": {1: "a", "1": "b"},
}


@pytest.mark.parametrize("name", [*JSON_FORMS, *NO_JSON_FORM])
def test_values_that_are_not_json_are_stored_as_json_or_skipped(
    make_cache: Factory, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The one documented divergence between backends (docs/codec.md): InMemoryCache keeps
    # objects, as LangChain's class does; SQLite and Redis store a JSON document, so they
    # give back a value's JSON form, or, with no faithful one, skip the write with a
    # warning (the provider was paid: the call must not fail), never altering the value.
    cache = make_cache()
    info = JSON_FORMS[name][0] if name in JSON_FORMS else NO_JSON_FORM[name]
    value = [Generation(text="x", generation_info={"v": info})]
    with caplog.at_level(logging.WARNING, logger="gencache"):
        cache.update(P, L, value)
    hit = cache.lookup(P, L)
    if not _persistent(cache):
        assert hit is not None
        assert hit[0].generation_info == {"v": info}
        assert hit[0].generation_info["v"] is info  # the object itself
    elif name in JSON_FORMS:
        assert hit == [Generation(text="x", generation_info={"v": JSON_FORMS[name][1]})]
        assert caplog.text == ""
    else:
        assert hit is None
        assert "cannot be stored" in caplog.text
        assert (cache.stats().skipped, cache.stats().updates) == (1, 0)
        with pytest.raises(BackendError, match="cannot be stored"):
            make_cache(strict=True).update(P, L, value)


def test_megabyte_prompts_llm_strings_and_texts(make_cache: Factory) -> None:
    # Redis keeps the prompt and llm_string in the entry's document, which must stay under
    # 16 MiB: 5 MB each there (14 MB with the texts), 10 MB each elsewhere.
    cache = make_cache()
    big = "é" * (2_500_000 if type(cache).__name__ == "RedisCache" else 5_000_000)
    text = "é" * 1_000_000  # 2 MB in UTF-8
    value = [Generation(text=text), ChatGeneration(message=AIMessage(content=text))]
    start = time.perf_counter()
    cache.update(big, big, value)
    assert cache.stats().skipped == 0
    assert cache.lookup(big, big) == value
    assert cache.lookup(big[:-1] + "e", big) is None
    assert cache.lookup(big, big + "\x00") is None
    # Measured: 0.02 s memory, 0.4 s SQLite/Redis. A figure, not a check: the machine
    # may be slow; the outcomes above are what must hold.
    mb = len(big.encode()) // 1_000_000
    print(f"figures: {mb} MB prompt, {type(cache).__name__}: {time.perf_counter() - start:.2f} s")


class _Answers(BaseChatModel):
    """Answers with ``answers``, one per call, in order.

    Not FakeListChatModel: its llm_string holds its responses, which a huge answer makes
    huge too (and Redis keeps the llm_string in the entry's document).
    """

    answers: list[str]
    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "answers"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": "answers"}

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.calls += 1
        message = AIMessage(content=self.answers[self.calls - 1])
        return ChatResult(generations=[ChatGeneration(message=message)])


@pytest.mark.parametrize("what", ["answer", "prompt"])
def test_an_entry_over_the_size_limit_is_a_skipped_write_that_never_fails_the_call(
    make_cache: Factory, what: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An answer over 16 MiB, or on Redis a prompt (kept in the document): not cached."""
    cache = make_cache()
    huge = "x" * (MAX_PAYLOAD_BYTES + 1)
    question, answer = (P, huge) if what == "answer" else (huge, "a short answer")
    model = _Answers(answers=[answer, "asked again"], cache=cache)
    with caplog.at_level(logging.WARNING, logger="gencache"):
        assert model.invoke(question).content == answer  # the call returns the answer
        second = model.invoke(question).content
    skipped = _persistent(cache) and (what == "answer" or type(cache).__name__ == "RedisCache")
    if not skipped:
        assert second == answer  # cached
        assert model.calls == 1
        assert (cache.stats().skipped, len(cache)) == (0, 1)
        return
    assert second == "asked again"  # not cached: the model was called again
    assert model.calls == 2
    assert "over the limit" in caplog.text
    stats = cache.stats()
    # With a huge prompt the second answer, short, makes as big a document: skipped too.
    expected = (2, 0, 0) if what == "prompt" else (1, 1, 1)
    assert (stats.skipped, stats.updates, stats.size) == expected
    with pytest.raises(BackendError, match="over the limit"):
        make_cache(strict=True).update(question, L, [Generation(text=answer)])


async def test_ten_thousand_generations(make_cache: Factory) -> None:
    cache = make_cache()
    value: list[Generation] = [
        Generation(text=f"g{i}", generation_info={"i": i}) if i % 2 else chat(f"c{i}")
        for i in range(10_000)
    ]
    await cache.aupdate(P, L, value)
    hit = await cache.alookup(P, L)
    assert hit == value
    assert [type(g) for g in hit] == [type(g) for g in value]


def chat(text: str) -> ChatGeneration:
    return ChatGeneration(message=AIMessage(content=text))


ODD = ["\x00", "a\x00b", "\ud800", "\udfff\x00", "\ude00\ud83d", "😀", "\ufffd", "?", ""]
SPLIT_PAIR = "\ud83d\ude00"  # two code points, a high then a low surrogate: not "😀"


def test_nul_and_lone_surrogates_in_keys_and_text(make_cache: Factory) -> None:
    # "\ufffd" or "?" (what a lossy encoder would make of "\ud800") are other keys, and so
    # is the split pair, which is not the emoji its two halves would join into. Redis keeps
    # the prompt in the entry's JSON document, which cannot hold a split pair (JSON would
    # join it): there such a prompt's answer is a skipped write, never another key's hit.
    cache = make_cache()
    for i, odd in enumerate(ODD):
        cache.update(P, odd, [Generation(text=odd + str(i)), chat(odd)])
        cache.update(odd + SPLIT_PAIR, odd, [Generation(text=str(i), generation_info={odd: [odd]})])
    split_pairs_kept = type(cache).__name__ != "RedisCache"
    for i, odd in enumerate(ODD):
        assert cache.lookup(P, odd) == [Generation(text=odd + str(i)), chat(odd)]
        hit = cache.lookup(odd + SPLIT_PAIR, odd)
        if split_pairs_kept:
            assert hit == [Generation(text=str(i), generation_info={odd: [odd]})]
        else:
            assert hit is None
        assert cache.lookup(odd + "😀", odd) is None
    stats = cache.stats()
    assert stats.size == len(ODD) * (2 if split_pairs_kept else 1)
    assert stats.skipped == (0 if split_pairs_kept else len(ODD))


def test_a_split_surrogate_pair_in_a_value_is_kept_or_refused_never_altered(
    make_cache: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    # JSON joins the escapes of a high and a low surrogate into one character, so SQLite
    # and Redis cannot store such a str: the codec refuses it and the write is skipped
    # (0.1 returned "😀"). InMemoryCache stores objects and returns it as written.
    cache = make_cache()
    value = [Generation(text="a" + SPLIT_PAIR, generation_info={"b" + SPLIT_PAIR: 1})]
    with caplog.at_level(logging.WARNING, logger="gencache"):
        cache.update(P, L, value)
    if not _persistent(cache):
        assert cache.lookup(P, L) == value
        return
    assert "surrogate pair as two code points" in caplog.text
    assert cache.lookup(P, L) is None
    assert cache.stats().skipped == 1
    with pytest.raises(BackendError, match="surrogate pair as two code points"):
        make_cache(strict=True).update(P, L, value)
