"""Tests of gencache.codec: round-trips, chunks, JSON forms, bounds, meta, safety, fuzzing."""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import tracemalloc
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from decimal import Decimal
from enum import Enum, IntEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    BaseMessageChunk,
    ChatMessage,
    ChatMessageChunk,
    FunctionMessage,
    FunctionMessageChunk,
    HumanMessage,
    HumanMessageChunk,
    RemoveMessage,
    SystemMessage,
    SystemMessageChunk,
    ToolMessage,
    ToolMessageChunk,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, Generation, GenerationChunk
from pydantic import BaseModel, ConfigDict, Field, field_serializer

from gencache.codec import (
    FORMAT_VERSION,
    MAX_CONTAINERS,
    MAX_DEPTH,
    MAX_PAYLOAD_BYTES,
    CodecError,
    decode,
    decode_entry,
    encode,
)

USAGE: UsageMetadata = {
    "input_tokens": 10,
    "output_tokens": 20,
    "total_tokens": 30,
    "input_token_details": {"audio": 0, "cache_creation": 1, "cache_read": 4},
    "output_token_details": {"audio": 0, "reasoning": 7},
}

RICH_AI = AIMessage(
    content=[
        {"type": "text", "text": "Hello ", "annotations": []},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {
            "type": "image",
            "source_type": "base64",
            "data": "iVBORw0KGgo=",
            "mime_type": "image/png",
        },
        {"type": "image", "base64": "iVBORw0KGgo=", "mime_type": "image/png", "id": "img1"},
        {"type": "reasoning", "reasoning": "Let me think.", "extras": {"signature": "abc"}},
        {"type": "thinking", "thinking": "hmm", "signature": "sig=="},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
        "a plain string block",
        {"type": "text", "text": "world"},
    ],
    tool_calls=[
        {"name": "get_weather", "args": {"city": "Paris", "units": ["c"]}, "id": "call_1"},
        {"name": "noop", "args": {}, "id": None},
    ],
    invalid_tool_calls=[{"name": "broken", "args": "{not json", "id": "call_2", "error": "bad"}],
    usage_metadata=USAGE,
    response_metadata={
        "model_name": "gpt-4o-2024-08-06",
        "finish_reason": "tool_calls",
        "logprobs": None,
        "token_usage": {"prompt_tokens": 10, "completion_tokens": 20},
        "model_provider": "openai",
    },
    additional_kwargs={
        "parsed": {"answer": 42, "items": [1.5, True, None, -0.0, "x"]},
        "function_call": {"name": "f", "arguments": '{"a": 1}'},
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
        "refusal": None,
    },
    id="lc_run--0b0c2d9e",
    name="assistant",
)

MESSAGES: dict[str, BaseMessage] = {
    "ai-str": AIMessage(content="hi", usage_metadata=USAGE),
    "ai-rich": RICH_AI,
    "ai-empty": AIMessage(content=""),
    "ai-example": AIMessage(content="x", example=True),
    "human": HumanMessage(content="q", id="h1", name="bob", example=True),
    "human-blocks": HumanMessage(
        content=[{"type": "text", "text": "see"}, {"type": "image_url", "image_url": "u"}]
    ),
    "system": SystemMessage(content="be nice", additional_kwargs={"k": [1, {"a": None}]}),
    "tool": ToolMessage(
        content="42",
        tool_call_id="call_1",
        artifact={"rows": [[1, 2], [3, 4]]},
        status="error",
        name="calc",
        response_metadata={"m": 1},
    ),
    "tool-default": ToolMessage(content=[{"type": "text", "text": "ok"}], tool_call_id="c"),
    "tool-falsy-artifact": ToolMessage(content="", tool_call_id="c", artifact=[]),
    "chat": ChatMessage(content="x", role="critic", id="c1"),
    "function": FunctionMessage(content='{"t": 20}', name="get_temp"),
}


def _streamed_ai_chunk() -> AIMessageChunk:
    first = AIMessageChunk(
        content="Hel",
        tool_call_chunks=[
            {"name": "f", "args": '{"a":', "id": "c1", "index": 0, "type": "tool_call_chunk"}
        ],
    )
    last = AIMessageChunk(
        content="lo",
        tool_call_chunks=[
            {"name": None, "args": " 1}", "id": None, "index": 0, "type": "tool_call_chunk"},
            {"name": "g", "args": "[1]", "id": "c2", "index": 1, "type": "tool_call_chunk"},
        ],
        usage_metadata=USAGE,
        response_metadata={"finish_reason": "stop"},
        chunk_position="last",
        id="run-1",
    )
    merged = first + last
    assert isinstance(merged, AIMessageChunk)
    return merged


CHUNKS: dict[str, BaseMessageChunk] = {
    "ai": _streamed_ai_chunk(),
    "human": HumanMessageChunk(content="h"),
    "system": SystemMessageChunk(content="s"),
    "tool": ToolMessageChunk(content="t", tool_call_id="1", artifact=[1]),
    "chat": ChatMessageChunk(content="c", role="r"),
    "function": FunctionMessageChunk(content="f", name="n"),
}


ROUND_TRIPS: dict[str, list[Generation]] = {
    "generation": [Generation(text="hello")],
    "generation-info": [Generation(text="", generation_info={"finish_reason": "stop", "n": [1]})],
    "generation-empty-info": [Generation(text="x", generation_info={})],
    "many": [Generation(text=str(i), generation_info={"i": i}) for i in range(5)],
    **{
        f"chat-{name}": [ChatGeneration(message=m, generation_info={"finish_reason": "stop"})]
        for name, m in MESSAGES.items()
    },
    "mixed": [Generation(text="a"), ChatGeneration(message=AIMessage(content="b"))],
    "generation-chunk": [GenerationChunk(text="a", generation_info={"x": 1})],
    **{
        f"chunk-{name}": [ChatGenerationChunk(message=m, generation_info={"i": 1})]
        for name, m in CHUNKS.items()
    },
    "chunk-in-chat-generation": [ChatGeneration(message=AIMessageChunk(content="x"))],
}


def roundtrip(generations: Sequence[Generation]) -> list[Generation]:
    return decode(encode(generations))


@pytest.mark.parametrize("generations", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_round_trip(generations: list[Generation]) -> None:
    out = roundtrip(generations)
    assert out == generations
    assert [type(g) for g in out] == [type(g) for g in generations]
    for before, after in zip(generations, out, strict=True):
        assert after.text == before.text
        assert after.type == before.type
        if isinstance(before, ChatGeneration):
            assert isinstance(after, ChatGeneration)
            assert type(after.message) is type(before.message)
            assert after.message.type == before.message.type
            assert after.message.model_extra == before.message.model_extra


def test_rich_ai_message_details() -> None:
    gen = ChatGeneration(message=RICH_AI)
    [out] = roundtrip([gen])
    assert isinstance(out, ChatGeneration)
    message = out.message
    assert isinstance(message, AIMessage)
    assert message.tool_calls == RICH_AI.tool_calls
    assert message.invalid_tool_calls == RICH_AI.invalid_tool_calls
    assert message.usage_metadata == USAGE
    assert message.additional_kwargs["parsed"] == {"answer": 42, "items": [1.5, True, None, 0, "x"]}
    assert message.content == RICH_AI.content
    assert out.text == gen.text == "Hello a plain string blockworld"


def test_example_and_type_survive() -> None:
    [out] = roundtrip([ChatGeneration(message=HumanMessage(content="x", example=True))])
    assert isinstance(out, ChatGeneration)
    assert out.message.model_extra == {"example": True}
    assert out.message.type == "human"


# Every declared field set to a non-default value, per class (guards LangChain upgrades).
BASE_KWARGS: dict[str, Any] = {
    "content": [{"type": "text", "text": "t"}, "s"],
    "additional_kwargs": {"a": 1},
    "response_metadata": {"b": [2]},
    "name": "n",
    "id": "i",
}
FULL_KWARGS: dict[type[BaseMessage], dict[str, Any]] = {
    AIMessage: {
        **BASE_KWARGS,
        "tool_calls": [{"name": "f", "args": {"x": 1}, "id": "1", "type": "tool_call"}],
        "invalid_tool_calls": [
            {"name": "g", "args": "{", "id": "2", "error": "e", "type": "invalid_tool_call"}
        ],
        "usage_metadata": USAGE,
    },
    HumanMessage: BASE_KWARGS,
    SystemMessage: BASE_KWARGS,
    ToolMessage: {**BASE_KWARGS, "tool_call_id": "1", "artifact": {"z": None}, "status": "error"},
    ChatMessage: {**BASE_KWARGS, "role": "r"},
    FunctionMessage: BASE_KWARGS,
}


@pytest.mark.parametrize("cls", FULL_KWARGS, ids=lambda c: c.__name__)
def test_every_declared_field_round_trips(cls: type[BaseMessage]) -> None:
    kwargs = FULL_KWARGS[cls]
    assert set(cls.model_fields) - {"type"} == set(kwargs)
    message = cls(**kwargs)
    [out] = roundtrip([ChatGeneration(message=message)])
    assert isinstance(out, ChatGeneration)
    assert out.message == message
    for name, value in kwargs.items():
        assert getattr(out.message, name) == value


# -- chunks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", CHUNKS.values(), ids=CHUNKS.keys())
@pytest.mark.parametrize("wrapper", [ChatGeneration, ChatGenerationChunk])
def test_message_chunks_round_trip_as_themselves(
    chunk: BaseMessageChunk, wrapper: type[ChatGeneration]
) -> None:
    gen = wrapper(message=chunk, generation_info={"i": 1})
    [out] = roundtrip([gen])
    assert out == gen
    assert type(out) is wrapper
    assert isinstance(out, ChatGeneration)
    assert type(out.message) is type(chunk)
    assert out.message.model_dump() == chunk.model_dump()
    assert out.text == gen.text


def test_ai_chunk_keeps_tool_call_chunks_and_chunk_position() -> None:
    chunk = CHUNKS["ai"]
    assert isinstance(chunk, AIMessageChunk)
    [out] = roundtrip([ChatGenerationChunk(message=chunk)])
    assert isinstance(out, ChatGenerationChunk)
    message = out.message
    assert isinstance(message, AIMessageChunk)
    assert message.tool_call_chunks == chunk.tool_call_chunks
    assert [c["index"] for c in message.tool_call_chunks] == [0, 1]
    assert message.chunk_position == "last"
    assert message.tool_calls == [{"name": "f", "args": {"a": 1}, "id": "c1", "type": "tool_call"}]
    assert message.invalid_tool_calls == chunk.invalid_tool_calls != []
    assert message.usage_metadata == chunk.usage_metadata
    # It still behaves as a chunk: it merges as the original does.
    more = AIMessageChunk(content="!", id="run-1")
    assert message + more == chunk + more
    assert out + ChatGenerationChunk(message=more) == ChatGenerationChunk(message=chunk + more)


def test_ai_chunk_with_tool_calls_only_round_trips() -> None:
    # Built from tool_calls, LangChain derives tool_call_chunks (index None) itself.
    chunk = AIMessageChunk(
        content="", tool_calls=[{"name": "f", "args": {"x": [1]}, "id": "1", "type": "tool_call"}]
    )
    assert chunk.tool_call_chunks
    [out] = roundtrip([ChatGeneration(message=chunk)])
    assert isinstance(out, ChatGeneration)
    assert out.message == chunk
    assert isinstance(out.message, AIMessageChunk)
    assert out.message.tool_call_chunks == chunk.tool_call_chunks


def test_generation_chunk_round_trips_as_itself() -> None:
    chunk = GenerationChunk(text="a", generation_info={"x": 1}) + GenerationChunk(text="b")
    [out] = roundtrip([chunk])
    assert type(out) is GenerationChunk
    assert out == chunk == GenerationChunk(text="ab", generation_info={"x": 1})
    assert isinstance(out, GenerationChunk)
    assert out + GenerationChunk(text="c") == chunk + GenerationChunk(text="c")


def test_chunk_tags_in_the_payload() -> None:
    payload = encode(
        [
            ChatGenerationChunk(message=AIMessageChunk(content="a", chunk_position="last")),
            GenerationChunk(text="b"),
            ChatGeneration(message=HumanMessageChunk(content="c")),
        ]
    )
    assert json.loads(payload)["g"] == [
        {
            "t": "chat_gen_chunk",
            "message": {"t": "ai_chunk", "content": "a", "chunk_position": "last"},
        },
        {"t": "gen_chunk", "text": "b"},
        {"t": "chat_gen", "message": {"t": "human_chunk", "content": "c"}},
    ]


# -- format ---------------------------------------------------------------------------------


def test_envelope_format() -> None:
    payload = encode([Generation(text="é🙂")])
    assert FORMAT_VERSION == 2
    assert payload == '{"g":[{"t":"gen","text":"é🙂"}],"v":2}'.encode()
    assert json.loads(payload) == {"v": 2, "g": [{"t": "gen", "text": "é🙂"}]}
    with_meta = encode([Generation(text="x")], meta={"b": "x", "a": [1, None]})
    assert with_meta == b'{"g":[{"t":"gen","text":"x"}],"meta":{"a":[1,null],"b":"x"},"v":2}'


@pytest.mark.parametrize("text", ["\ud800", "a\udfffb", "\x00", "🙂\ud83d", '"\\[{'])
def test_surrogates_and_control_characters_round_trip(text: str) -> None:
    gens = [Generation(text=text, generation_info={text: [text]})]
    payload = encode(gens)
    if any("\ud800" <= c <= "\udfff" for c in text):
        assert payload.isascii()
    assert decode(payload) == gens


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview, str])
def test_decode_accepts_buffers_and_str(kind: type[Any]) -> None:
    payload = encode(ROUND_TRIPS["chat-ai-rich"])
    data = payload.decode() if kind is str else kind(payload)
    assert decode(data) == ROUND_TRIPS["chat-ai-rich"]


def test_encoding_is_deterministic() -> None:
    a = Generation(text="x", generation_info={"b": 1, "a": {"d": 2, "c": 3}})
    b = Generation(text="x", generation_info={"a": {"c": 3, "d": 2}, "b": 1})
    assert encode([a]) == encode([b]) == encode([b])
    rich = ROUND_TRIPS["chat-ai-rich"]
    assert encode(rich) == encode(roundtrip(rich))


def test_depth_limit_is_the_same_for_encode_and_decode() -> None:
    def nested(depth: int) -> list[Generation]:
        value: Any = 1
        for _ in range(depth):
            value = [value]
        return [Generation(text="x", generation_info={"k": value})]

    # envelope {, "g" [, generation {, generation_info {: 4 levels before the lists.
    ok = nested(MAX_DEPTH - 4)
    assert decode(encode(ok)) == ok
    with pytest.raises(CodecError, match="deeper"):
        encode(nested(MAX_DEPTH - 3))
    too_deep = encode(ok).replace(b"[1]", b"[[1]]")
    with pytest.raises(CodecError, match="deeper"):
        decode(too_deep)


def test_many_shallow_brackets_and_brackets_in_strings_are_fine() -> None:
    gens = [Generation(text="[{" * 500, generation_info={"a": [[1]] * 200, "s": '\\"[' * 99})]
    assert roundtrip(gens) == gens


# -- version 1 (gencache 0.1) -------------------------------------------------------------

# Written by gencache 0.1's encode; 0.1 exports (gencache export) hold such envelopes.
V1_PAYLOAD = (
    b'{"g":[{"generation_info":{"finish_reason":"stop"},"message":{"additional_kwargs":'
    b'{"parsed":{"city":"Paris"}},"content":"Paris.","id":"run-1","response_metadata":'
    b'{"finish_reason":"stop","model_name":"gpt-4o-mini"},"t":"ai","tool_calls":[{"args":'
    b'{"x":1},"id":"c1","name":"f","type":"tool_call"}],"usage_metadata":{"input_tokens":3,'
    b'"output_tokens":2,"total_tokens":5}},"t":"chat_gen"},{"t":"gen","text":"\\ud800x"}],"v":1}'
)


def test_version_1_payload_is_read() -> None:
    message = AIMessage(
        content="Paris.",
        id="run-1",
        tool_calls=[{"name": "f", "args": {"x": 1}, "id": "c1"}],
        usage_metadata={"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
        response_metadata={"model_name": "gpt-4o-mini", "finish_reason": "stop"},
        additional_kwargs={"parsed": {"city": "Paris"}},
    )
    expected = [
        ChatGeneration(message=message, generation_info={"finish_reason": "stop"}),
        Generation(text="\ud800x"),
    ]
    assert decode(V1_PAYLOAD) == expected
    assert decode_entry(V1_PAYLOAD) == (expected, {})
    # Written again, it is the same envelope at version 2.
    assert encode(expected) == V1_PAYLOAD[: -len(b"1}")] + b"2}"


V1_SHAPES = {k: v for k, v in ROUND_TRIPS.items() if "chunk" not in k}


@pytest.mark.parametrize("generations", V1_SHAPES.values(), ids=V1_SHAPES.keys())
def test_version_1_envelopes_of_every_shape_are_read(generations: list[Generation]) -> None:
    # Without chunks, version 2 writes exactly what version 1 wrote, bar the number.
    payload = encode(generations)
    assert payload.endswith(b',"v":2}')
    assert decode(payload[: -len(b"2}")] + b"1}") == generations


# -- values stored in their JSON form ------------------------------------------------------


class Color(Enum):
    RED = "red"


class Level(IntEnum):
    HIGH = 3


class Mode(str, Enum):
    FAST = "fast"


class Answer(BaseModel):
    city: str
    when: datetime.date
    tags: tuple[str, ...] = ()
    score: Decimal = Decimal("0.5")


class Aliased(BaseModel):
    full_name: str = Field(alias="fullName")


class Measure(BaseModel):
    value: float


class StrictDay(BaseModel):
    model_config = ConfigDict(strict=True)
    day: datetime.date  # strict mode refuses "2024-05-01" for a date: not rebuilt


class StrictName(BaseModel):
    model_config = ConfigDict(strict=True)
    name: str  # JSON-native fields only: rebuilt fine in strict mode too


class Hidden(BaseModel):
    shown: int
    secret: str = Field(default="", exclude=True)


class Reshaped(BaseModel):
    when: datetime.date

    @field_serializer("when")
    def _as_words(self, when: datetime.date) -> str:
        return when.strftime("%d %B %Y")


@dataclasses.dataclass
class Point:
    x: int
    y: float


UTC_NOON = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)
PLUS_2 = datetime.timezone(datetime.timedelta(hours=2))
UID = uuid.UUID("12345678-1234-5678-1234-567812345678")
ANSWER = Answer(city="Paris", when=datetime.date(2024, 5, 1), tags=("a", "b"))
ANSWER_JSON = {"city": "Paris", "when": "2024-05-01", "tags": ["a", "b"], "score": "0.5"}

# value -> what comes back (exact types: plain JSON data).
CONVERSIONS: dict[str, tuple[Any, Any]] = {
    "datetime-utc": (UTC_NOON, "2024-05-01T12:00:00Z"),
    "datetime-offset": (
        datetime.datetime(2024, 5, 1, 12, tzinfo=PLUS_2),
        "2024-05-01T12:00:00+02:00",
    ),
    "datetime-naive": (datetime.datetime(2024, 5, 1, 12, 0, 0, 500), "2024-05-01T12:00:00.000500"),
    "date": (datetime.date(2024, 5, 1), "2024-05-01"),
    "time": (datetime.time(13, 5), "13:05:00"),
    "timedelta": (datetime.timedelta(seconds=90), "PT1M30S"),
    "decimal": (Decimal("1.10"), "1.10"),
    "uuid": (UID, "12345678-1234-5678-1234-567812345678"),
    "enum": (Color.RED, "red"),
    "int-enum": (Level.HIGH, 3),
    "str-enum": (Mode.FAST, "fast"),
    "bytes-utf8": (b"caf\xc3\xa9", "café"),
    "path": (Path("/tmp/x.txt"), "/tmp/x.txt"),
    "tuple": ((1, "a", None), [1, "a", None]),
    "nested-tuples": ([(1, (2.5, ()))], [[1, [2.5, []]]]),
    "set-of-str": (
        {"pear", "apple", "fig", "kiwi", "plum"},
        ["apple", "fig", "kiwi", "pear", "plum"],
    ),
    "frozenset-of-int": (frozenset({30, 1, 200}), [1, 200, 30]),  # sorted by JSON text
    "set-mixed": ({1, "1", None}, ["1", 1, None]),
    "set-of-tuples": ({(2, "b"), (1, "a")}, [[1, "a"], [2, "b"]]),
    "int-keys": ({2: "b", 1: "a"}, {"1": "a", "2": "b"}),
    "none-key": ({None: 1}, {"None": 1}),
    "bool-key": ({True: 1}, {"true": 1}),
    "float-key": ({1.5: 1}, {"1.5": 1}),
    "enum-key": ({Color.RED: 1}, {"red": 1}),
    "int-enum-key": ({Level.HIGH: 1}, {"3": 1}),
    "date-key": ({datetime.date(2024, 5, 1): 1}, {"2024-05-01": 1}),
    "tuple-in-str-key-dict": ({"a": (1,)}, {"a": [1]}),
    "pydantic-model": (ANSWER, ANSWER_JSON),
    "pydantic-alias": (Aliased(fullName="Ada"), {"fullName": "Ada"}),
    "pydantic-strict-json-native": (StrictName(name="x"), {"name": "x"}),
    "pydantic-excluded-default": (Hidden(shown=1), {"shown": 1}),
    "langchain-message": (
        HumanMessage(content="hi", id="h1"),
        {
            "content": "hi",
            "additional_kwargs": {},
            "response_metadata": {},
            "type": "human",
            "name": None,
            "id": "h1",
        },
    ),
    "dataclass": (Point(1, 2.5), {"x": 1, "y": 2.5}),
    "models-in-containers": (
        [Point(0, 0.0), {"p": (Aliased(fullName="B"),)}],
        [{"x": 0, "y": 0.0}, {"p": [{"fullName": "B"}]}],
    ),
    "ordered-dict": (OrderedDict(b=1, a=(2,)), {"a": [2], "b": 1}),
    "mapping-proxy": (MappingProxyType({"a": (1,), 2: "b"}), {"a": [1], "2": "b"}),
}


def assert_plain(value: Any) -> None:
    """Assert ``value`` is plain JSON data of exact types (no subclasses, no tuples)."""
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            assert type(key) is str, key
            assert_plain(item)
    elif kind is list:
        for item in value:
            assert_plain(item)
    else:
        assert kind in (str, int, float, bool, type(None)), kind


@pytest.mark.parametrize(("value", "expected"), CONVERSIONS.values(), ids=CONVERSIONS.keys())
def test_values_are_stored_in_their_json_form(value: Any, expected: Any) -> None:
    gens = [Generation(text="x", generation_info={"k": value})]
    payload = encode(gens)
    [out] = decode(payload)
    assert out.generation_info == {"k": expected}
    # Also the order of lists, and of sets written as lists.
    assert json.dumps(out.generation_info, sort_keys=True) == json.dumps(
        {"k": expected}, sort_keys=True
    )
    assert_plain(out.generation_info)
    assert encode([out]) == payload  # the JSON form is a fixed point


def test_structured_output_model_comes_back_as_its_json_dict() -> None:
    # What ChatOpenAI(...).with_structured_output(Answer) leaves in the message.
    message = AIMessage(
        content=json.dumps(ANSWER_JSON),
        additional_kwargs={"parsed": ANSWER, "refusal": None, "aliased": Aliased(fullName="A")},
    )
    [out] = roundtrip([ChatGeneration(message=message)])
    assert isinstance(out, ChatGeneration)
    kwargs = out.message.additional_kwargs
    assert kwargs["parsed"] == ANSWER.model_dump(mode="json") == ANSWER_JSON
    assert Answer(**kwargs["parsed"]) == ANSWER  # what langchain-openai's parser does
    assert Aliased(**kwargs["aliased"]) == Aliased(fullName="A")  # aliases kept for that
    assert kwargs["refusal"] is None
    assert out.message.content == message.content


def test_a_model_not_rebuilt_from_its_json_form_is_refused() -> None:
    # Stored, its dict would make langchain-openai's parser raise on every hit.
    strict = StrictDay(day=datetime.date(2024, 5, 1))
    with pytest.raises(CodecError, match="StrictDay is not rebuilt equal from its JSON form"):
        encode(
            [ChatGeneration(message=AIMessage(content="", additional_kwargs={"parsed": strict}))]
        )
    with pytest.raises(CodecError, match="Reshaped is not rebuilt"):
        encode(_info([Reshaped(when=datetime.date(2024, 5, 1))]))


SLOW = {"when": UTC_NOON, "ids": (UID,), "model": Point(1, 2.0), "set": {"b", "a"}}
SLOW_JSON = {
    "when": "2024-05-01T12:00:00Z",
    "ids": ["12345678-1234-5678-1234-567812345678"],
    "model": {"x": 1, "y": 2.0},
    "set": ["a", "b"],
}


def test_conversion_applies_in_every_field() -> None:
    chunk = AIMessageChunk(
        content=[{"type": "text", "text": "t", "extra": SLOW}],
        additional_kwargs={"k": SLOW},
        response_metadata={"k": SLOW, "created": UTC_NOON},
        chunk_position="last",
    )
    ai = AIMessage(
        content="", tool_calls=[{"name": "f", "args": {"k": SLOW}, "id": "1", "type": "tool_call"}]
    )
    tool = ToolMessage(content="x", tool_call_id="1", artifact=[ANSWER, SLOW])
    gens = [
        ChatGenerationChunk(message=chunk, generation_info={"k": SLOW}),
        ChatGeneration(message=ai),
        ChatGeneration(message=tool, generation_info={"k": (1, 2)}),
        GenerationChunk(text="x", generation_info={"k": SLOW}),
    ]
    out_chunk, out_ai, out_tool, out_plain = roundtrip(gens)
    assert isinstance(out_chunk, ChatGenerationChunk)
    assert isinstance(out_chunk.message, AIMessageChunk)
    assert out_chunk.message.content == [{"type": "text", "text": "t", "extra": SLOW_JSON}]
    assert out_chunk.message.additional_kwargs == {"k": SLOW_JSON}
    assert out_chunk.message.response_metadata == {
        "k": SLOW_JSON,
        "created": "2024-05-01T12:00:00Z",
    }
    assert out_chunk.generation_info == out_plain.generation_info == {"k": SLOW_JSON}
    assert isinstance(out_ai, ChatGeneration)
    assert isinstance(out_ai.message, AIMessage)
    assert out_ai.message.tool_calls[0]["args"] == {"k": SLOW_JSON}
    assert isinstance(out_tool, ChatGeneration)
    assert isinstance(out_tool.message, ToolMessage)
    assert out_tool.message.artifact == [ANSWER_JSON, SLOW_JSON]
    assert out_tool.generation_info == {"k": [1, 2]}
    assert type(out_plain) is GenerationChunk


def test_sets_are_written_in_one_order() -> None:
    # Equal sets built in different orders (so iterating differently) give equal bytes.
    words = [f"w{i}" for i in range(200)]
    a = set(words)
    b = {f"x{i}" for i in range(1000)}
    b.update(words)
    b.difference_update(f"x{i}" for i in range(1000))
    assert a == b
    assert list(a) != list(b)  # same items, another table size: another iteration order
    assert encode(_info(a)) == encode(_info(b)) == encode(_info(frozenset(sorted(words))))
    [out] = decode(encode(_info(a)))
    assert out.generation_info == {"k": sorted(words)}


@settings(max_examples=150, deadline=None)
@given(value=st.deferred(lambda: CONVERTIBLE))
def test_property_converted_values_are_a_fixed_point(value: Any) -> None:
    gens = [ChatGeneration(message=AIMessage(content="", additional_kwargs={"v": value}))]
    try:
        payload = encode(gens)
    except CodecError as exc:
        error = str(exc)
    else:
        error = ""
    if error:
        assert "two dict keys" in error  # {1: ..., "1": ...}: no faithful JSON form
        return
    [out] = decode(payload)
    assert isinstance(out, ChatGeneration)
    assert_plain(out.message.additional_kwargs)
    assert encode([out]) == payload


# -- errors ---------------------------------------------------------------------------------


GEN = '[{"t":"gen","text":"x"}]'


def _envelope(*items: Any, version: int = 2) -> bytes:
    return json.dumps({"v": version, "g": list(items)}).encode()


def _chat(message: Any, version: int = 2) -> bytes:
    return _envelope({"t": "chat_gen", "message": message}, version=version)


BAD_PAYLOADS: dict[str, Any] = {
    "not-utf8": b"\xff\xfe{}",
    "utf16-bom": ('{"v":1,"g":' + GEN + "}").encode("utf-16"),
    "utf8-bom": b'\xef\xbb\xbf{"v":1,"g":' + GEN.encode() + b"}",
    "empty": b"",
    "not-json": b"{nope",
    "trailing-data": b'{"v":1,"g":' + GEN.encode() + b"} x",
    "array": b"[]",
    "null": b"null",
    "no-g": b'{"v":1}',
    "extra-key": b'{"v":2,"g":' + GEN.encode() + b',"x":0}',
    "version-3": b'{"v":3,"g":' + GEN.encode() + b"}",
    "version-0": b'{"v":0,"g":' + GEN.encode() + b"}",
    "version-true": b'{"v":true,"g":' + GEN.encode() + b"}",
    "version-float": b'{"v":1.0,"g":' + GEN.encode() + b"}",
    "version-str": b'{"v":"1","g":' + GEN.encode() + b"}",
    "g-object": b'{"v":1,"g":{}}',
    "g-empty-v1": b'{"v":1,"g":[]}',
    "g-empty-v2": b'{"v":2,"g":[]}',
    "g-null": b'{"v":2,"g":null}',
    "meta-null": b'{"v":2,"g":' + GEN.encode() + b',"meta":null}',
    "meta-list": b'{"v":2,"g":' + GEN.encode() + b',"meta":[]}',
    "meta-str": b'{"v":2,"g":' + GEN.encode() + b',"meta":"x"}',
    "meta-in-v1": b'{"v":1,"g":' + GEN.encode() + b',"meta":{}}',
    "v1-gen-chunk": _envelope({"t": "gen_chunk", "text": "x"}, version=1),
    "v1-chat-gen-chunk": _envelope(
        {"t": "chat_gen_chunk", "message": {"t": "ai_chunk", "content": "x"}}, version=1
    ),
    "v1-message-chunk": _chat({"t": "ai_chunk", "content": "x"}, version=1),
    "chunk-tag-as-message": _chat({"t": "chat_gen_chunk", "content": "x"}),
    "generation-tag-as-message": _chat({"t": "gen", "content": "x"}),
    "message-tag-as-generation": _envelope({"t": "ai", "content": "x"}),
    "chat-gen-chunk-with-ai-message": _envelope(
        {"t": "chat_gen_chunk", "message": {"t": "ai", "content": "x"}}
    ),
    "gen-chunk-message-field": _envelope({"t": "gen_chunk", "text": "x", "message": {}}),
    "ai-chunk-position-first": _chat({"t": "ai_chunk", "content": "", "chunk_position": "first"}),
    "ai-chunk-field-on-ai": _chat({"t": "ai", "content": "", "chunk_position": "last"}),
    "tool-call-chunks-on-ai": _chat({"t": "ai", "content": "", "tool_call_chunks": []}),
    "tool-call-chunks-str": _chat({"t": "ai_chunk", "content": "", "tool_call_chunks": "x"}),
    "tool-call-chunk-extra": _chat(
        {"t": "ai_chunk", "content": "", "tool_call_chunks": [{"args": "{}", "x": 1}]}
    ),
    "ai-chunk-args-nan": _chat(
        {
            "t": "ai_chunk",
            "content": "",
            "tool_call_chunks": [{"name": "f", "args": '{"a": NaN}', "id": "1", "index": 0}],
        }
    ),
    "tool-chunk-no-id": _chat({"t": "tool_chunk", "content": "x"}),
    "over-max-payload-bytes": b" " * MAX_PAYLOAD_BYTES + _envelope({"t": "gen", "text": "x"}),
    "item-int": _envelope(1),
    "item-no-tag": _envelope({"text": "x"}),
    "item-unknown-tag": _envelope({"t": "Generation", "text": "x"}),
    "item-tag-list": _envelope({"t": ["gen"], "text": "x"}),
    "gen-no-text": _envelope({"t": "gen"}),
    "gen-text-int": _envelope({"t": "gen", "text": 1}),
    "gen-info-list": _envelope({"t": "gen", "text": "x", "generation_info": []}),
    "gen-unknown-field": _envelope({"t": "gen", "text": "x", "type": "Generation"}),
    "chat-no-message": _envelope({"t": "chat_gen"}),
    "chat-text-field": _envelope({"t": "chat_gen", "text": "x", "message": {"t": "ai"}}),
    "message-str": _chat("hi"),
    "message-no-tag": _chat({"content": "x"}),
    "message-unknown-tag": _chat({"t": "remove", "content": "x"}),
    "message-class-path": _chat({"t": "langchain_core.messages.AIMessage", "content": "x"}),
    "message-no-content": _chat({"t": "ai"}),
    "message-type-field": _chat({"t": "ai", "content": "x", "type": "human"}),
    "message-content-blocks": _chat({"t": "ai", "content": "x", "content_blocks": []}),
    "message-extra-field": _chat({"t": "ai", "content": "x", "foo": 1}),
    "content-int": _chat({"t": "ai", "content": 1}),
    "content-null": _chat({"t": "human", "content": None}),
    "kwargs-list": _chat({"t": "ai", "content": "", "additional_kwargs": []}),
    "kwargs-str": _chat({"t": "ai", "content": "", "additional_kwargs": "tool_calls"}),
    "tool-calls-str": _chat({"t": "ai", "content": "", "tool_calls": "x"}),
    "tool-calls-items": _chat({"t": "ai", "content": "", "tool_calls": [1]}),
    "tool-call-fields": _chat({"t": "ai", "content": "", "tool_calls": [{"name": "f"}]}),
    "tool-call-extra": _chat(
        {"t": "ai", "content": "", "tool_calls": [{"name": "f", "args": {}, "id": "1", "x": 1}]}
    ),
    "usage-missing": _chat({"t": "ai", "content": "", "usage_metadata": {"input_tokens": 1}}),
    "usage-str": _chat({"t": "ai", "content": "", "usage_metadata": "x"}),
    "tool-no-id": _chat({"t": "tool", "content": "x"}),
    "tool-bad-status": _chat({"t": "tool", "content": "x", "tool_call_id": "1", "status": "ok"}),
    "chat-no-role": _chat({"t": "chat", "content": "x"}),
    "function-no-name": _chat({"t": "function", "content": "x"}),
    "name-int": _chat({"t": "human", "content": "x", "name": 1}),
    "nan": b'{"v":1,"g":[{"t":"gen","text":"x","generation_info":{"a":NaN}}]}',
    "infinity": b'{"v":1,"g":[{"t":"gen","text":"x","generation_info":{"a":Infinity}}]}',
    "-infinity": b'{"v":1,"g":[{"t":"gen","text":"x","generation_info":{"a":-Infinity}}]}',
    "huge-int": b'{"v":1,"g":[{"t":"gen","text":"x","generation_info":{"a":'
    + b"9" * 5000
    + b"}}]}",
    "deep-lists": b"[" * 100_000 + b"]" * 100_000,
    "deep-unterminated": b'{"v":1,"g":' + b"[" * 100_000,
    "deep-in-info": b'{"v":1,"g":[{"t":"gen","text":"x","generation_info":{"a":'
    + b"[" * 200
    + b"]" * 200
    + b"}}]}",
    "lc-constructor-envelope": json.dumps(
        {"lc": 1, "type": "constructor", "id": ["langchain", "schema", "output", "Generation"]}
    ).encode(),
    "lc-constructor-item": _envelope(
        {"lc": 1, "type": "constructor", "id": ["x"], "kwargs": {"text": "x"}}
    ),
    "not-bytes-int": 123,
    "not-bytes-none": None,
    "not-bytes-list": [b"{}"],
}


@pytest.mark.parametrize("payload", BAD_PAYLOADS.values(), ids=BAD_PAYLOADS.keys())
def test_decode_errors_raise_codec_error(payload: Any) -> None:
    with pytest.raises(CodecError):
        decode(payload)


class _Obj:
    pass


class _MyAIMessage(AIMessage):
    pass


def _circular() -> dict[str, Any]:
    data: dict[str, Any] = {}
    data["self"] = data
    return data


def _info(value: Any) -> list[Generation]:
    return [Generation(text="x", generation_info={"k": value})]


class _WithObject(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    obj: _Obj


def _nested_tuples(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = (value,)
    return value


def _circular_list() -> list[Any]:
    data: list[Any] = []
    data.append(data)
    return data


BAD_VALUES: dict[str, Any] = {
    "object": _info(_Obj()),
    "object-in-tuple": _info((1, _Obj())),
    "bytes-not-utf8": _info(b"\xff\xfe"),
    "nan": _info(math.nan),
    "inf": _info([math.inf]),
    "nan-in-tuple": _info((1.0, math.nan)),
    "inf-in-set": _info({math.inf}),
    "nan-in-dataclass": _info(Point(0, math.nan)),
    "nan-in-model": [
        ChatGeneration(
            message=AIMessage(content="", additional_kwargs={"parsed": Measure(value=math.nan)})
        )
    ],
    "model-with-object": _info(_WithObject(obj=_Obj())),
    "model-strict-date": _info(StrictDay(day=datetime.date(2024, 5, 1))),
    "model-excluded-field": _info(Hidden(shown=1, secret="s")),
    "model-reshaping-serializer": _info(Reshaped(when=datetime.date(2024, 5, 1))),
    "model-strict-in-parsed": [
        ChatGeneration(
            message=AIMessage(
                content="", additional_kwargs={"parsed": StrictDay(day=datetime.date(2024, 5, 1))}
            )
        )
    ],
    "key-collision": _info({1: "a", "1": "b"}),
    "key-collision-enum": _info({"red": 1, Color.RED: 2}),
    "huge-int": _info(10**5000),
    "huge-int-in-tuple": _info((10**5000,)),
    "deep": _info(json.loads("[" * 500 + "]" * 500)),
    "deep-tuples": _info(_nested_tuples(500)),
    "circular": _info(_circular()),
    "circular-list-with-tuple": _info([(1,), _circular_list()]),
    "generator-value": _info(i for i in range(2)),
    "tool-artifact-object": [
        ChatGeneration(message=ToolMessage(content="", tool_call_id="1", artifact=_Obj()))
    ],
    "extra-message-field": [ChatGeneration(message=AIMessage(content="", foo=1))],
    "message-subclass": [ChatGeneration(message=_MyAIMessage(content=""))],
    "remove-message": [ChatGeneration(message=RemoveMessage(id="x"))],
    "empty-list": [],
    "empty-tuple": (),
    "item-str": ["x"],
    "item-dict": [{"text": "x"}],
    "item-message": [AIMessage(content="x")],
    "item-none": [None],
    "str": "text",
    "bytes-seq": b"text",
    "generator": (Generation(text="x") for _ in range(1)),
    "none": None,
}


@pytest.mark.parametrize("value", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_encode_errors_raise_codec_error(value: Any) -> None:
    with pytest.raises(CodecError):
        encode(value)


# -- empty values --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload", [b'{"g":[],"v":1}', b'{"g":[],"v":2}', b'{"g":[],"meta":{},"v":2}']
)
def test_empty_generations_are_refused(payload: bytes) -> None:
    # An empty hit would make every LangChain call for the prompt raise IndexError.
    with pytest.raises(CodecError, match="no generations"):
        encode([])
    with pytest.raises(CodecError, match="non-empty"):
        decode(payload)


# -- bounds --------------------------------------------------------------------------------


def test_payload_size_limit_is_the_same_for_encode_and_decode() -> None:
    overhead = len(encode([Generation(text="")]))
    fits = [Generation(text="x" * (MAX_PAYLOAD_BYTES - overhead))]
    payload = encode(fits)
    assert len(payload) == MAX_PAYLOAD_BYTES
    assert decode(payload) == fits
    with pytest.raises(CodecError, match="over the limit"):
        encode([Generation(text="x" * (MAX_PAYLOAD_BYTES - overhead + 1))])
    over = b" " + payload  # still valid JSON, one byte too long
    for data in (over, bytearray(over), memoryview(over), over.decode()):
        with pytest.raises(CodecError, match="over the limit"):
            decode(data)


def test_size_limit_counts_escapes() -> None:
    # A lone surrogate switches the payload to \\uXXXX escapes, six bytes per character.
    n = MAX_PAYLOAD_BYTES // 6
    with pytest.raises(CodecError, match="over the limit"):
        encode([Generation(text="\ud800" + "é" * n)])


def _wide_payload(containers: int) -> bytes:
    # envelope {, "g" [, generation {, generation_info {, "a" [: five, then empty lists.
    lists = b",".join([b"[]"] * (containers - 5))
    return b'{"g":[{"generation_info":{"a":[' + lists + b']},"t":"gen","text":"x"}],"v":2}'


def test_container_limit_is_the_same_for_encode_and_decode() -> None:
    payload = _wide_payload(MAX_CONTAINERS)
    [out] = decode(payload)
    assert out.generation_info is not None
    assert len(out.generation_info["a"]) == MAX_CONTAINERS - 5
    assert encode([out]) == payload
    with pytest.raises(CodecError, match="arrays and objects"):
        decode(_wide_payload(MAX_CONTAINERS + 1))
    out.generation_info["a"].append([])
    with pytest.raises(CodecError, match="arrays and objects"):
        encode([out])


def test_brackets_inside_strings_are_not_containers() -> None:
    text = "[{" * MAX_CONTAINERS
    gens = [Generation(text=text, generation_info={text[:1000]: ["{" * 1000]})]
    assert roundtrip(gens) == gens


def _info_payload(raw: str) -> bytes:
    head = b'{"v":2,"g":[{"t":"gen","text":"x","generation_info":{"a":'
    return head + raw.encode() + b"}}]}"


def _bomb(shape: str, size: int) -> bytes:
    """A payload of ``size`` bytes, mostly brackets inside ``generation_info``."""
    head = b'{"g":[{"t":"gen","text":"x","generation_info":{"a":'
    tail = b'}}],"v":2}'
    n = (size - len(head) - len(tail)) // 3
    if shape == "deep":
        body = b"[" * (n + n // 2) + b"]" * (n + n // 2)
    else:  # wide: [[],[],...]
        body = b"[" + b"[]," * (n - 1) + b"[]]"
    return head + body + tail


@pytest.mark.parametrize("kind", [bytes, str])
@pytest.mark.parametrize(
    ("shape", "size"),
    [("deep", 15_000_000), ("wide", 15_000_000), ("deep", 40_000_000), ("wide", 40_000_000)],
)
def test_bracket_bomb_is_refused_before_parsing(kind: type[Any], shape: str, size: int) -> None:
    # 15 MB: under the size limit, refused by the container count; 40 MB: by the size.
    raw = _bomb(shape, size)
    data: Any = raw.decode() if kind is str else raw
    del raw
    match = "over the limit of" if size > MAX_PAYLOAD_BYTES else "arrays and objects"
    tracemalloc.start()
    try:
        with pytest.raises(CodecError, match=match):
            decode(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Parsing would build millions of lists (over 300 MB); the checks copy nothing.
    assert peak < 1_000_000, f"decode allocated {peak:,} bytes"


def test_deep_bomb_under_the_container_limit_is_refused_by_depth() -> None:
    payload = _info_payload("[" * 400_000 + "]" * 400_000)
    tracemalloc.start()
    try:
        with pytest.raises(CodecError, match="deeper"):
            decode(payload)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * len(payload)  # the depth scan's copies, not parsed objects


# -- meta ----------------------------------------------------------------------------------

META: dict[str, Any] = {
    "key": "ab" * 32,
    "prompt": 'p\ud800 "é"',
    "llm_string": "{'model': 'gpt-4o'}",
    "created_at": 1_714_564_800.25,
    "expires_at": None,
    "n": [1, {"x": True}],
}


def test_meta_round_trips_and_decode_ignores_it() -> None:
    gens = ROUND_TRIPS["chat-ai-rich"]
    payload = encode(gens, meta=META)
    assert decode_entry(payload) == (gens, META)
    assert decode(payload) == gens
    assert json.loads(payload)["meta"] == META
    assert payload.isascii()  # the lone surrogate in the prompt: \\uXXXX escapes


def test_meta_is_optional_and_deterministic() -> None:
    gens = [Generation(text="x")]
    assert decode_entry(encode(gens)) == (gens, {})
    assert encode(gens, meta=None) == encode(gens)
    assert encode(gens, meta={}) == b'{"g":[{"t":"gen","text":"x"}],"meta":{},"v":2}'
    assert decode_entry(encode(gens, meta={})) == (gens, {})
    reordered = dict(reversed(list(META.items())))
    assert encode(gens, meta=reordered) == encode(gens, meta=META)
    assert encode(gens, meta=MappingProxyType(META)) == encode(gens, meta=META)


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


BAD_META: dict[str, Any] = {
    "list": [("a", 1)],
    "str": "meta",
    "int-key": {1: "a"},
    "tuple": {"a": (1,)},
    "datetime": {"created_at": UTC_NOON},
    "model": {"a": Point(1, 1.0)},
    "nan": {"a": math.nan},
    "object": {"a": _Obj()},
    "deep": {"a": _nested(MAX_DEPTH - 1)},  # envelope {, meta {: 2 levels before the lists
}


@pytest.mark.parametrize("meta", BAD_META.values(), ids=BAD_META.keys())
def test_meta_must_be_plain_json(meta: Any) -> None:
    with pytest.raises(CodecError):
        encode([Generation(text="x")], meta=meta)


def test_meta_depth_limit() -> None:
    gens = [Generation(text="x")]
    ok = {"a": _nested(MAX_DEPTH - 2)}
    assert decode_entry(encode(gens, meta=ok)) == (gens, ok)


# -- LangChain serialization objects stay inert -------------------------------------------

SECRET = {"lc": 1, "type": "secret", "id": ["OPENAI_API_KEY"]}
CONSTRUCTOR = {
    "lc": 1,
    "type": "constructor",
    "id": ["langchain_core", "messages", "AIMessage"],
    "kwargs": {"content": "pwned", "additional_kwargs": {"k": SECRET}},
}


def test_lc_secret_and_constructor_dicts_stay_inert(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-never-appear")
    crafted = {
        "v": 1,
        "g": [
            {
                "t": "chat_gen",
                "generation_info": {"s": SECRET},
                "message": {
                    "t": "ai",
                    "content": [SECRET, CONSTRUCTOR, {"type": "text", "text": "hi"}],
                    "additional_kwargs": {"s": SECRET, "c": CONSTRUCTOR},
                    "response_metadata": {"s": SECRET},
                    "tool_calls": [{"name": "f", "args": {"s": SECRET}, "id": "1"}],
                },
            },
            {"t": "gen", "text": "x", "generation_info": SECRET},
            {
                "t": "chat_gen",
                "message": {
                    "t": "tool",
                    "content": [SECRET],
                    "tool_call_id": "1",
                    "artifact": SECRET,
                },
            },
        ],
    }
    out = decode(json.dumps(crafted).encode())
    chat, plain, tool = out
    assert isinstance(chat, ChatGeneration)
    assert isinstance(tool, ChatGeneration)
    message = chat.message
    assert isinstance(message, AIMessage)
    assert message.content == [SECRET, CONSTRUCTOR, {"type": "text", "text": "hi"}]
    assert message.additional_kwargs == {"s": SECRET, "c": CONSTRUCTOR}
    assert message.response_metadata == {"s": SECRET}
    assert message.tool_calls[0]["args"] == {"s": SECRET}
    assert chat.generation_info == {"s": SECRET}
    assert plain.generation_info == SECRET
    assert isinstance(tool.message, ToolMessage)
    assert tool.message.artifact == SECRET
    dumped = repr(out) + json.dumps([g.model_dump() for g in out])
    assert "sk-must-never-appear" not in dumped
    assert "pwned" not in chat.text
    # The inert dicts also survive a second trip unchanged.
    assert roundtrip(out) == out


# -- property tests ---------------------------------------------------------------------------

CHARS = st.one_of(
    st.characters(),
    st.characters(categories=["Cs"]),
    st.sampled_from(["\x00", "🙂", "é", "\u2028", '"', "\\", "[", "{", "}", "]"]),
)
TEXT = st.text(CHARS, max_size=30)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)


HASHABLE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-1000, max_value=1000),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
CONVERTIBLE_LEAVES = st.one_of(
    SCALARS,
    st.datetimes(timezones=st.none() | st.just(datetime.timezone.utc)),
    st.dates(),
    st.timedeltas(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.uuids(),
    st.sampled_from([Color.RED, Level.HIGH, Mode.FAST]),
    st.text(max_size=10).map(str.encode),
    st.builds(Point, st.integers(-10, 10), st.floats(allow_nan=False, allow_infinity=False)),
)
CONVERTIBLE: st.SearchStrategy[Any] = st.recursive(
    CONVERTIBLE_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.frozensets(HASHABLE, max_size=4)
        | st.sets(st.tuples(HASHABLE, HASHABLE), max_size=3)
        | st.dictionaries(HASHABLE | st.sampled_from([Color.RED, Level.HIGH]), inner, max_size=3)
    ),
    max_leaves=15,
)


@settings(max_examples=150, deadline=None)
@given(text=TEXT, info=st.none() | st.dictionaries(TEXT, JSON, max_size=5))
def test_property_round_trip(text: str, info: dict[str, Any] | None) -> None:
    gens: list[Generation] = [
        Generation(text=text, generation_info=info),
        ChatGeneration(
            message=AIMessage(
                content=[text, {"type": "text", "text": text}],
                additional_kwargs=info or {},
                response_metadata={"m": info},
            ),
            generation_info=info,
        ),
        # Over MAX_DEPTH brackets in strings: decode takes its exact (string-aware) depth scan.
        Generation(text="[{" * MAX_DEPTH + text, generation_info={text: info}),
    ]
    out = roundtrip(gens)
    assert out == gens
    assert out[1].text == gens[1].text


def _decodes_or_codec_error(data: Any) -> None:
    try:
        out = decode(data)
    except CodecError:
        return
    assert isinstance(out, list)
    assert all(isinstance(g, Generation) for g in out)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_random_bytes(data: bytes) -> None:
    _decodes_or_codec_error(data)


@settings(max_examples=150, deadline=None)
@given(JSON)
def test_fuzz_random_json(value: Any) -> None:
    _decodes_or_codec_error(json.dumps(value).encode())


FIELD_NAMES = [
    *BASE_KWARGS,
    *FULL_KWARGS[AIMessage],
    "tool_call_id",
    "artifact",
    "status",
    "role",
    "example",
    "type",
    "tool_call_chunks",
    "chunk_position",
]
TOOL_CALL = st.fixed_dictionaries(
    {"name": TEXT, "args": JSON, "id": st.none() | TEXT},
    optional={"error": TEXT, "type": TEXT, "index": st.none() | st.integers(0, 3)},
)
MESSAGE_TAGS = ["ai", "human", "system", "tool", "chat", "function"]
MESSAGE = st.fixed_dictionaries(
    {"t": st.sampled_from([*MESSAGE_TAGS, *(f"{t}_chunk" for t in MESSAGE_TAGS), "x", "gen"])},
    optional={
        name: JSON | st.lists(TOOL_CALL, max_size=2) | st.sampled_from(["success", "error", "last"])
        for name in FIELD_NAMES
    },
)
GENERATION = st.fixed_dictionaries(
    {"t": st.sampled_from(["gen", "chat_gen", "gen_chunk", "chat_gen_chunk", "ai"])},
    optional={"text": TEXT | JSON, "generation_info": JSON, "message": MESSAGE | JSON},
)
ENVELOPE = st.fixed_dictionaries(
    {"v": st.sampled_from([1, 1, 2, 2, True]), "g": st.lists(GENERATION, max_size=3)},
    optional={"meta": st.dictionaries(TEXT, JSON, max_size=3) | JSON},
)


@settings(max_examples=300, deadline=None)
@given(ENVELOPE)
def test_fuzz_envelope_shaped_json(value: dict[str, Any]) -> None:
    _decodes_or_codec_error(json.dumps(value).encode())


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=1, max_value=MAX_DEPTH + 5), TEXT)
def test_fuzz_encode_accepts_only_what_decode_accepts(depth: int, leaf: str) -> None:
    value: Any = leaf
    for i in range(depth):
        value = [value] if i % 2 else {leaf: value}
    gens = [ChatGeneration(message=AIMessage(content="", additional_kwargs={"v": value}))]
    try:
        payload = encode(gens)
    except CodecError:
        return
    assert decode(payload) == gens
