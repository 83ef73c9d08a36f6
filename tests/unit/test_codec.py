"""Tests of gencache.codec: round-trips, chunks, strictness, safety and fuzzing."""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
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
    message_chunk_to_message,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, Generation, GenerationChunk
from pydantic import BaseModel

from gencache.codec import FORMAT_VERSION, MAX_DEPTH, CodecError, decode, encode

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

ROUND_TRIPS: dict[str, list[Generation]] = {
    "empty": [],
    "generation": [Generation(text="hello")],
    "generation-info": [Generation(text="", generation_info={"finish_reason": "stop", "n": [1]})],
    "generation-empty-info": [Generation(text="x", generation_info={})],
    "many": [Generation(text=str(i), generation_info={"i": i}) for i in range(5)],
    **{
        f"chat-{name}": [ChatGeneration(message=m, generation_info={"finish_reason": "stop"})]
        for name, m in MESSAGES.items()
    },
    "mixed": [Generation(text="a"), ChatGeneration(message=AIMessage(content="b"))],
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


CHUNKS: dict[str, BaseMessage] = {
    "ai": _streamed_ai_chunk(),
    "human": HumanMessageChunk(content="h"),
    "system": SystemMessageChunk(content="s"),
    "tool": ToolMessageChunk(content="t", tool_call_id="1", artifact=[1]),
    "chat": ChatMessageChunk(content="c", role="r"),
    "function": FunctionMessageChunk(content="f", name="n"),
}


@pytest.mark.parametrize("chunk", CHUNKS.values(), ids=CHUNKS.keys())
@pytest.mark.parametrize("wrapper", [ChatGeneration, ChatGenerationChunk])
def test_message_chunks_decode_as_messages(
    chunk: BaseMessage, wrapper: type[ChatGeneration]
) -> None:
    gen = wrapper(message=chunk, generation_info={"i": 1})
    [out] = roundtrip([gen])
    expected = ChatGeneration(message=message_chunk_to_message(chunk), generation_info={"i": 1})
    assert out == expected
    assert type(out) is ChatGeneration
    assert out.text == gen.text
    assert type(out.message) is type(chunk).__mro__[1]


def test_ai_chunk_keeps_tool_calls_parsed_from_chunks() -> None:
    chunk = CHUNKS["ai"]
    assert isinstance(chunk, AIMessageChunk)
    [out] = roundtrip([ChatGeneration(message=chunk)])
    assert isinstance(out, ChatGeneration)
    message = out.message
    assert isinstance(message, AIMessage)
    assert message.tool_calls == [{"name": "f", "args": {"a": 1}, "id": "c1", "type": "tool_call"}]
    assert message.tool_calls == chunk.tool_calls
    assert message.invalid_tool_calls == chunk.invalid_tool_calls != []
    assert message.usage_metadata == chunk.usage_metadata
    assert message.type == "ai"


def test_generation_chunk_decodes_as_generation() -> None:
    chunk = GenerationChunk(text="a", generation_info={"x": 1}) + GenerationChunk(text="b")
    assert roundtrip([chunk]) == [Generation(text="ab", generation_info={"x": 1})]


# -- format ---------------------------------------------------------------------------------


def test_envelope_format() -> None:
    payload = encode([Generation(text="é🙂")])
    assert FORMAT_VERSION == 1
    assert payload == '{"g":[{"t":"gen","text":"é🙂"}],"v":1}'.encode()
    assert json.loads(payload) == {"v": 1, "g": [{"t": "gen", "text": "é🙂"}]}


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


# -- errors ---------------------------------------------------------------------------------


def _envelope(*items: Any) -> bytes:
    return json.dumps({"v": 1, "g": list(items)}).encode()


def _chat(message: Any) -> bytes:
    return _envelope({"t": "chat_gen", "message": message})


BAD_PAYLOADS: dict[str, Any] = {
    "not-utf8": b"\xff\xfe{}",
    "utf16-bom": '{"v":1,"g":[]}'.encode("utf-16"),
    "utf8-bom": b'\xef\xbb\xbf{"v":1,"g":[]}',
    "empty": b"",
    "not-json": b"{nope",
    "trailing-data": b'{"v":1,"g":[]} x',
    "array": b"[]",
    "null": b"null",
    "no-g": b'{"v":1}',
    "extra-key": b'{"v":1,"g":[],"x":0}',
    "version-2": b'{"v":2,"g":[]}',
    "version-0": b'{"v":0,"g":[]}',
    "version-true": b'{"v":true,"g":[]}',
    "version-float": b'{"v":1.0,"g":[]}',
    "version-str": b'{"v":"1","g":[]}',
    "g-object": b'{"v":1,"g":{}}',
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


class _Parsed(BaseModel):
    answer: int


class _MyAIMessage(AIMessage):
    pass


def _circular() -> dict[str, Any]:
    data: dict[str, Any] = {}
    data["self"] = data
    return data


def _info(value: Any) -> list[Generation]:
    return [Generation(text="x", generation_info={"k": value})]


BAD_VALUES: dict[str, Any] = {
    "datetime": _info(datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)),
    "object": _info(_Obj()),
    "bytes": _info(b"x"),
    "set": _info({1}),
    "tuple": _info((1, 2)),
    "int-key": [Generation(text="x", generation_info={"k": {1: "a"}})],
    "none-key": [Generation(text="x", generation_info={"k": {None: "a"}})],
    "nan": _info(math.nan),
    "inf": _info([math.inf]),
    "huge-int": _info(10**5000),
    "deep": _info(json.loads("[" * 500 + "]" * 500)),
    "circular": _info(_circular()),
    "pydantic-parsed": [
        ChatGeneration(
            message=AIMessage(content="", additional_kwargs={"parsed": _Parsed(answer=1)})
        )
    ],
    "tool-artifact-object": [
        ChatGeneration(message=ToolMessage(content="", tool_call_id="1", artifact=_Obj()))
    ],
    "extra-message-field": [ChatGeneration(message=AIMessage(content="", foo=1))],
    "message-subclass": [ChatGeneration(message=_MyAIMessage(content=""))],
    "remove-message": [ChatGeneration(message=RemoveMessage(id="x"))],
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
]
TOOL_CALL = st.fixed_dictionaries(
    {"name": TEXT, "args": JSON, "id": st.none() | TEXT}, optional={"error": TEXT, "type": TEXT}
)
MESSAGE = st.fixed_dictionaries(
    {"t": st.sampled_from(["ai", "human", "system", "tool", "chat", "function", "x"])},
    optional={
        name: JSON | st.lists(TOOL_CALL, max_size=2) | st.sampled_from(["success", "error"])
        for name in FIELD_NAMES
    },
)
GENERATION = st.fixed_dictionaries(
    {"t": st.sampled_from(["gen", "chat_gen", "ai"])},
    optional={"text": TEXT | JSON, "generation_info": JSON, "message": MESSAGE | JSON},
)
ENVELOPE = st.fixed_dictionaries(
    {"v": st.sampled_from([1, 1, 1, 2, True]), "g": st.lists(GENERATION, max_size=3)}
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
