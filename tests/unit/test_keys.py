"""Tests of gencache._keys: canonical chat prompts and digests.

A canonical prompt must give the same key for the same conversation on every run (message
ids, usage, response metadata, LangChain's hit marker and key order change between runs)
and a different key for any change that reaches the provider. ``reference`` below is the
definition written the slow, obvious way (decode everything, drop, sort, encode); the
library's parser must agree with it on every prompt LangChain can produce.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from langchain_core.caches import BaseCache
from langchain_core.caches import InMemoryCache as LangChainCache
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.load import dumps
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import Generation

from gencache._chat_prompt import canonical_prompt
from gencache._keys import KEY_VERSION, check_key, digest

HEAD = '[{"lc": 1, "type": "constructor", "id": ["langchain", "schema", "messages", "'
DROPPED = ("id", "usage_metadata", "response_metadata")
PNG = base64.b64encode(bytes(range(64))).decode()


def reference(prompt: str) -> str:
    """The canonical form by definition: decode, drop what is never sent, sort, encode."""
    try:
        value = json.loads(prompt)
    except ValueError:
        return prompt
    if not prompt.startswith(HEAD) or not isinstance(value, list):
        return prompt
    parts = []
    for message in value:
        kwargs = {k: v for k, v in message["kwargs"].items() if k not in DROPPED}
        if isinstance(kwargs.get("content"), list):
            for block in kwargs["content"]:
                block_id = block.get("id") if isinstance(block, dict) else None
                if isinstance(block_id, str) and block_id.startswith("lc_"):
                    del block["id"]
        fields = ", ".join(
            f"{json.dumps(k)}: {json.dumps(v, sort_keys=True)}" for k, v in kwargs.items()
        )
        head = f'{{"lc": 1, "type": "constructor", "id": {json.dumps(message["id"])}'
        parts.append(f'{head}, "kwargs": {{{fields}}}}}')
    return "[" + ", ".join(parts) + "]"


def reversed_keys(value: Any) -> Any:
    """The same JSON value with every object's keys in the opposite order."""
    if isinstance(value, dict):
        return {k: reversed_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reversed_keys(v) for v in value]
    return value


# --- two runs of one conversation -------------------------------------------------------


def conversation(turns: int, run: int) -> list[BaseMessage]:
    """A support conversation with tool calls, images and a named user, as run ``run`` saw it.

    Between runs only what a provider or LangChain changes differs: message ids, usage (with
    LangChain's ``total_cost`` hit marker on run 1), response metadata, the key order of
    tool-call arguments, and the ids LangChain generates for content blocks.
    """
    messages: list[BaseMessage] = [
        SystemMessage("You are a support agent. Be brief.", id=f"s{run}")
    ]
    for i in range(turns):
        ask = f'Turn {i}: the export of report {i} fails with "timeout" after {i + 3} s.'
        if i % 4 == 1:
            blocks: list[str | dict[str, Any]] = [
                {"type": "text", "text": ask, "id": f"lc_{run}-{i}"},
                {
                    "type": "image",
                    "base64": PNG,
                    "mime_type": "image/png",
                    "id": f"lc_{run}-img{i}",
                },
            ]
            messages.append(HumanMessage(content=blocks, name="ana", id=f"h{run}-{i}"))
        else:
            messages.append(HumanMessage(ask, id=f"h{run}-{i}"))
        if i % 3 == 2:
            args = {
                "report": i,
                "format": "csv",
                "filters": {"owner": "ana", "since": "2024-01-01"},
            }
            call = {
                "name": "run_export",
                "args": reversed_keys(args) if run else args,
                "id": f"call_{i}",
            }
            messages.append(_answer("", i, run, tool_calls=[call]))
            messages.append(
                ToolMessage(f"report {i}: 3 rows", tool_call_id=f"call_{i}", id=f"t{run}-{i}")
            )
        messages.append(
            _answer(f"Report {i} times out on the CSV step; retry with a filter.", i, run)
        )
    return messages


def _answer(text: str, i: int, run: int, **fields: Any) -> AIMessage:
    usage = {
        "input_tokens": 100 + i + 7 * run,
        "output_tokens": 20 + run,
        "total_tokens": 120 + i + 8 * run,
    }
    if run:
        usage["total_cost"] = 0  # what LangChain writes into a message served from its cache
    metadata = {
        "token_usage": {
            "prompt_tokens": usage["input_tokens"],
            "completion_tokens": usage["output_tokens"],
        },
        "model_name": "gpt-4o-mini",
        "system_fingerprint": f"fp_{run}",
        "id": f"chatcmpl-{run}-{i}",
        "finish_reason": "tool_calls" if fields else "stop",
    }
    return AIMessage(
        text, id=f"run-{run}-{i}", usage_metadata=usage, response_metadata=metadata, **fields
    )


def prompts(messages: Sequence[BaseMessage], *, clear_ids: bool = False) -> list[str]:
    """The prompt of every chat-model call in a conversation: the history before each answer.

    With ``clear_ids``, as a chat model builds it (it sets every message id to None first).
    """
    if clear_ids:
        messages = [m.model_copy(update={"id": None}) for m in messages]
    return [dumps(list(messages[:i])) for i, m in enumerate(messages) if isinstance(m, AIMessage)]


@pytest.mark.parametrize("turns", [5, 20])
@pytest.mark.parametrize("clear_ids", [False, True], ids=["dumps", "as a chat model keys it"])
def test_a_conversation_gets_the_same_keys_on_every_run(turns: int, clear_ids: bool) -> None:
    first = prompts(conversation(turns, 0), clear_ids=clear_ids)
    second = prompts(conversation(turns, 1), clear_ids=clear_ids)
    assert len(first) == len(second) >= turns
    assert all(a != b for a, b in zip(first[1:], second[1:], strict=True))  # as LangChain keys
    for a, b in zip(first, second, strict=True):
        assert canonical_prompt(a) == canonical_prompt(b) == reference(a)
    opening = [m.model_copy(update={"id": None}) for m in conversation(turns, 0)[:2]]
    assert canonical_prompt(first[0]) == dumps(opening)


def test_the_canonical_prompt_is_what_langchain_writes_without_the_unsent_fields() -> None:
    messages = [
        SystemMessage("Be brief."),
        HumanMessage("Hi", id="1"),
        _answer("Hello", 0, 1),
        HumanMessage("Bye"),
    ]
    without = [
        m.model_copy(update={"id": None, "usage_metadata": None, "response_metadata": {}})
        for m in messages
    ]
    assert canonical_prompt(dumps(messages)) == dumps(without)


class CanonicalDictCache(BaseCache):
    """A dict keyed by the canonical prompt: the smallest cache that uses canonical keys."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], Sequence[Generation]] = {}

    def lookup(self, prompt: str, llm_string: str) -> Sequence[Generation] | None:
        return self.entries.get((canonical_prompt(prompt), llm_string))

    def update(self, prompt: str, llm_string: str, return_val: Sequence[Generation]) -> None:
        self.entries[(canonical_prompt(prompt), llm_string)] = return_val

    def clear(self, **kwargs: Any) -> None:
        self.entries.clear()


def _answers() -> Iterator[AIMessage]:
    for i in itertools.count():
        usage = {"input_tokens": 10 + i, "output_tokens": 5, "total_tokens": 15 + i}
        yield AIMessage(f"answer {i}", usage_metadata=usage, response_metadata={"id": f"resp-{i}"})


def _second_run_hits(cache: BaseCache, turns: int = 5) -> int:
    model = GenericFakeChatModel(messages=_answers(), cache=cache)
    calls = []
    for _ in range(2):
        history: list[BaseMessage] = [SystemMessage("Be brief.")]
        for turn in range(turns):
            history.append(HumanMessage(f"question {turn}"))
            history.append(model.invoke(history))
        calls.append(int(history[-1].content.split()[-1]))  # type: ignore[union-attr]
    return turns - (calls[1] - calls[0])  # each miss called the model once more


def test_a_five_turn_conversation_run_twice_hits_every_turn() -> None:
    assert _second_run_hits(CanonicalDictCache()) == 5
    # The same run with LangChain's own cache: its hit marker splits the key (issue #35308).
    assert _second_run_hits(LangChainCache()) == 1


# --- no false hits ----------------------------------------------------------------------

Mutation = Callable[[list[BaseMessage]], None]


def _base() -> list[BaseMessage]:
    return [
        SystemMessage("You are a support agent. Be brief."),
        HumanMessage(
            content=[
                {"type": "text", "text": "What does this chart show?"},
                {"type": "image", "base64": PNG, "mime_type": "image/png"},
                {"type": "file", "base64": PNG, "mime_type": "application/pdf"},
            ],
            name="ana",
        ),
        AIMessage(
            content=[
                {"type": "reasoning", "reasoning": "Look up the report."},
                {"type": "text", "text": ""},
            ],
            tool_calls=[
                {"name": "run_export", "args": {"report": 7, "format": "csv"}, "id": "call_7"}
            ],
            additional_kwargs={"refusal": None},
        ),
        ToolMessage("report 7: 3 rows", tool_call_id="call_7", status="success"),
        ChatMessage(content="Thanks.", role="user"),
        AIMessage("Report 7 has 3 rows."),
    ]


def _set(index: int, **update: Any) -> Mutation:
    def mutate(messages: list[BaseMessage]) -> None:
        messages[index] = messages[index].model_copy(update=update)

    return mutate


def _edit_block(index: int, block: int, key: str, change: Callable[[Any], Any]) -> Mutation:
    def mutate(messages: list[BaseMessage]) -> None:
        content = copy.deepcopy(messages[index].content)
        content[block][key] = change(content[block][key])  # type: ignore[index]
        messages[index] = messages[index].model_copy(update={"content": content})

    return mutate


def _edit_tool_call(key: str, change: Callable[[Any], Any]) -> Mutation:
    def mutate(messages: list[BaseMessage]) -> None:
        call = copy.deepcopy(messages[2].tool_calls[0])  # type: ignore[attr-defined]
        call[key] = change(call[key])
        messages[2] = messages[2].model_copy(update={"tool_calls": [call]})

    return mutate


def _human_to_system(messages: list[BaseMessage]) -> None:
    messages[1] = SystemMessage(content=messages[1].content, name="ana")


def _remove_chat_message(messages: list[BaseMessage]) -> None:
    del messages[4]


def _swap_two_messages(messages: list[BaseMessage]) -> None:
    messages[3], messages[4] = messages[4], messages[3]


def _flip_byte(data: str) -> str:
    raw = bytearray(base64.b64decode(data))
    raw[10] ^= 1
    return base64.b64encode(bytes(raw)).decode()


MUTATIONS: dict[str, Mutation] = {
    "content character": _set(5, content="Report 7 has 4 rows."),
    "text block character": _edit_block(1, 0, "text", lambda t: t.replace("chart", "charT")),
    "role of a message": _human_to_system,
    "role of a chat message": _set(4, role="assistant"),
    "tool-call argument value": _edit_tool_call("args", lambda a: {**a, "format": "tsv"}),
    "tool-call argument name": _edit_tool_call("args", lambda a: {"report": 7, "fmt": "csv"}),
    "tool-call name": _edit_tool_call("name", lambda n: n + "s"),
    "tool-call id": _edit_tool_call("id", lambda i: "call_8"),
    "tool result": _set(3, content="report 7: 4 rows"),
    "tool result status": _set(3, status="error"),
    "tool_call_id of the result": _set(3, tool_call_id="call_8"),
    "image byte": _edit_block(1, 1, "base64", _flip_byte),
    "image type": _edit_block(1, 1, "mime_type", lambda m: "image/jpeg"),
    "file byte": _edit_block(1, 2, "base64", _flip_byte),
    "reasoning text": _edit_block(2, 0, "reasoning", lambda r: r + "!"),
    "system prompt word": _set(0, content="You are a sales agent. Be brief."),
    "name": _set(1, name="bob"),
    "name added": _set(5, name="assistant"),
    "additional_kwargs value": _set(2, additional_kwargs={"refusal": "no"}),
    "message removed": _remove_chat_message,
    "messages swapped": _swap_two_messages,
}


@pytest.mark.parametrize("mutation", MUTATIONS.values(), ids=MUTATIONS.keys())
def test_any_change_that_reaches_the_provider_splits_the_key(mutation: Mutation) -> None:
    messages = _base()
    mutation(messages)
    assert canonical_prompt(dumps(messages)) != canonical_prompt(dumps(_base()))


def test_the_mutation_suite_starts_from_a_prompt_that_is_rewritten() -> None:
    # _base() has unsorted content blocks and tool calls: every mutation goes through the
    # parser, not the unchanged-prompt path.
    prompt = dumps(_base())
    assert canonical_prompt(prompt) != prompt
    assert canonical_prompt(prompt) == reference(prompt)


# --- properties -------------------------------------------------------------------------

TEXT = st.text(st.sampled_from('ab "\\{}[]:,\n\té\u2028😀') | st.characters(), max_size=12)
NAMES = st.text("abcdefghij_", min_size=1, max_size=8)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
BLOCK = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, TEXT),
    st.builds(
        lambda d: {"type": "image", "base64": d, "mime_type": "image/png"},
        st.sampled_from([PNG, "AAAA"]),
    ),
    st.builds(lambda u: {"type": "image_url", "image_url": {"url": u, "detail": "low"}}, TEXT),
    st.builds(lambda t, i: {"type": "reasoning", "reasoning": t, "id": i}, TEXT, NAMES),
)
CONTENT = TEXT | st.lists(BLOCK | TEXT, min_size=1, max_size=3)
TOOL_CALL = st.builds(
    lambda name, args, call_id: {"name": name, "args": args, "id": call_id, "type": "tool_call"},
    NAMES,
    st.dictionaries(TEXT, JSON, max_size=3),
    NAMES,
)
MESSAGE = st.one_of(
    st.builds(HumanMessage, content=CONTENT, name=st.none() | NAMES),
    st.builds(SystemMessage, content=CONTENT),
    st.builds(
        AIMessage,
        content=CONTENT,
        tool_calls=st.lists(TOOL_CALL, max_size=2),
        additional_kwargs=st.dictionaries(NAMES, JSON, max_size=2),
    ),
    st.builds(
        ToolMessage,
        content=CONTENT,
        tool_call_id=NAMES,
        status=st.sampled_from(["success", "error"]),
    ),
    st.builds(ChatMessage, content=CONTENT, role=NAMES),
)
MESSAGES = st.lists(MESSAGE, min_size=1, max_size=5)


def noisy(
    messages: Sequence[BaseMessage], seed: int, metadata: dict[str, Any] | None = None
) -> list[BaseMessage]:
    """The same messages as a later run sends them: new ids and metadata, keys reordered."""
    if metadata is None:
        metadata = {"id": f"r{seed}", "n": [seed, {"b": 1, "a": 2}]}
    out = []
    for i, message in enumerate(messages):
        update: dict[str, Any] = {"id": f"{seed}-{i}", "response_metadata": metadata}
        if isinstance(message.content, list):
            update["content"] = [
                {**reversed_keys(b), "id": f"lc_{seed}-{i}"}
                if isinstance(b, dict) and "id" not in b
                else reversed_keys(b)
                for b in message.content
            ]
        if isinstance(message, AIMessage):
            usage = {
                "input_tokens": seed,
                "output_tokens": 1,
                "total_tokens": seed + 1,
                "total_cost": 0,
            }
            update["usage_metadata"] = {**metadata, **usage}
            update["tool_calls"] = [
                {**c, "args": reversed_keys(c["args"])} for c in message.tool_calls
            ]
            update["additional_kwargs"] = reversed_keys(message.additional_kwargs)
        out.append(message.model_copy(update=update))
    return out


@given(MESSAGES)
def test_matches_the_definition_on_every_message_list(messages: list[BaseMessage]) -> None:
    prompt = dumps(messages)
    assert canonical_prompt(prompt) == reference(prompt)


@given(MESSAGES, st.integers(0, 10**6))
def test_fields_never_sent_never_split_a_key(messages: list[BaseMessage], seed: int) -> None:
    assert canonical_prompt(dumps(noisy(messages, seed))) == canonical_prompt(dumps(messages))


# Metadata that imitates the fields around it: the parser delimits metadata without decoding
# it, so a look-alike must not fool it into keeping or dropping the wrong text.
LOOKALIKE = st.recursive(
    JSON
    | st.sampled_from(["ai", "}", "{", "]", "[", '}, "type": "ai"', '}, "tool_calls": ', "\\"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["type", "tool_calls", "invalid_tool_calls", "usage_metadata"]) | TEXT,
            inner,
            max_size=4,
        )
    ),
    max_leaves=10,
)
TRICKS = [
    {"x": {"a": 1}, "type": "ai", "tool_calls": [], "invalid_tool_calls": []},
    {"s": "}", "x": {"a": 1}, "type": "ai", "tool_calls": [1]},
    {"s": "{", "x": [{"a": "]"}], "type": "ai"},
    {"x": {"y": {}}, "usage_metadata": {"tool_calls": []}, "invalid_tool_calls": [{"a": "}}, "}]},
    {"s": 'a\\"b}', "t": "\\"},
    {"x": {"a": 1}, "tool_calls": [], "invalid_tool_calls": []},
    # Both texts the commonest AIMessage layout is delimited by (the usage's start, the
    # message's end), at their place in the metadata's own layout, once and twice.
    {
        "x": {"a": 1},
        "type": "ai",
        "usage_metadata": {"b": 2},
        "tool_calls": [],
        "invalid_tool_calls": [],
    },
    {
        "x": {"type": "ai", "usage_metadata": {"tool_calls": [], "invalid_tool_calls": []}},
        "y": {
            "z": {},
            "type": "ai",
            "usage_metadata": {"b": {}},
            "tool_calls": [],
            "invalid_tool_calls": [],
        },
    },
]


@given(
    MESSAGES,
    st.integers(0, 10**6),
    st.dictionaries(TEXT, LOOKALIKE, max_size=4) | st.sampled_from(TRICKS),
)
def test_metadata_that_looks_like_message_fields_is_still_left_out(
    messages: list[BaseMessage], seed: int, metadata: dict[str, Any]
) -> None:
    prompt = dumps(noisy(messages, seed, metadata))
    assert canonical_prompt(prompt) == canonical_prompt(dumps(messages)) == reference(prompt)


@pytest.mark.parametrize("metadata", TRICKS)
def test_look_alike_metadata_in_a_conversation(metadata: dict[str, Any]) -> None:
    messages = conversation(3, 0)
    prompt = dumps(noisy(messages, 1, metadata))
    assert canonical_prompt(prompt) == canonical_prompt(dumps(messages)) == reference(prompt)


@given(MESSAGES)
def test_canonical_prompts_are_fixed_points(messages: list[BaseMessage]) -> None:
    canonical = canonical_prompt(dumps(noisy(messages, 1)))
    assert canonical_prompt(canonical) is canonical


@given(TEXT | st.text(max_size=400), st.integers(0, 10**6))
@example("ends with a backslash \\", 1)
@example('a quote " inside', 1)
@example('\\" escaped backslash then quote', 1)
@example('", "type": "human"}}, looks like the end', 1)
def test_the_unchanged_path_and_the_rewriting_path_agree(text: str, seed: int) -> None:
    # A lone human message with no quote in its content is returned without parsing; with
    # an id or metadata added it is parsed and rewritten. Both must give the same key, and
    # so must a conversation that the parser leaves unchanged.
    for messages in ([HumanMessage(text)], [SystemMessage(text), HumanMessage(text)]):
        prompt = dumps(messages)
        assert canonical_prompt(prompt) is prompt
        assert canonical_prompt(dumps(noisy(messages, seed))) == prompt


@given(st.text())
def test_never_raises_and_leaves_other_strings_alone(text: str) -> None:
    assert canonical_prompt(text) is text or text.startswith(HEAD)
    assert isinstance(canonical_prompt(HEAD + text), str)
    assert isinstance(canonical_prompt(HEAD + 'HumanMessage"], "kwargs": {' + text), str)


@given(JSON)
def test_json_that_is_not_a_message_list_is_unchanged(value: Any) -> None:
    for text in (
        json.dumps(value),
        json.dumps([{"lc": 1, "type": "constructor", "kwargs": value}]),
    ):
        assert canonical_prompt(text) is text


@given(MESSAGES, st.data())
def test_damaged_prompts_never_raise_and_stay_fixed_points(
    messages: list[BaseMessage], data: st.DataObject
) -> None:
    prompt = dumps(noisy(messages, 3))
    cut = data.draw(st.integers(0, len(prompt) - 1))
    head = prompt[:cut]
    assert canonical_prompt(head) is head  # a strict prefix is never a complete message list
    end = data.draw(st.integers(cut, len(prompt)))
    damaged = prompt[:cut] + data.draw(st.text('"\\{}[],: x', max_size=3)) + prompt[end:]
    result = canonical_prompt(damaged)
    assert canonical_prompt(result) == result


def test_nesting_too_deep_to_decode_leaves_the_prompt_unchanged() -> None:
    deep = HEAD + 'AIMessage"], "kwargs": {"content": ' + "[" * 100_000 + "]" * 100_000 + "}}]"
    assert canonical_prompt(deep) is deep


def test_threads_share_the_work_and_get_the_same_results() -> None:
    calls = [p for run in range(4) for p in prompts(conversation(6, run))]
    expected = [reference(p) for p in calls]
    results: list[list[str]] = [[] for _ in range(4)]

    def work(k: int) -> None:
        order = calls[k:] + calls[:k]
        results[k] = [canonical_prompt((p + ".")[:-1]) for p in order]  # fresh equal strings

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for k, result in enumerate(results):
        assert result == expected[k:] + expected[:k]


# --- digest -----------------------------------------------------------------------------


def _v1(prompt: str, llm_string: str) -> str:
    """The digest gencache 0.1 wrote."""
    p, s = prompt.encode(), llm_string.encode()
    data = b"gencache-key-v1\x00" + len(p).to_bytes(8, "big") + p + len(s).to_bytes(8, "big") + s
    return hashlib.sha256(data).hexdigest()


def test_digest_is_a_versioned_hex_sha256() -> None:
    assert KEY_VERSION == 2
    key = digest("prompt", "llm")
    assert len(key) == 64
    assert int(key, 16) >= 0
    assert key == digest("prompt", "llm", None)
    assert key != _v1("prompt", "llm")  # entries written by 0.1 are misses


def test_digest_separates_every_part_and_every_scope() -> None:
    keys = {
        digest("ab", "c"),
        digest("a", "bc"),
        digest("abc", ""),
        digest("", "abc"),
        digest("a", "b", ""),
        digest("a", "b", None),
        digest("a", "b", "t"),
        digest("a", "b\x00", None),
        digest("a\ud800", "b"),
        digest("a\udc00", "b"),
    }
    assert len(keys) == 10


@pytest.mark.parametrize(
    ("prompt", "llm_string", "scope"), [(1, "l", None), ("p", b"l", None), ("p", "l", 1)]
)
def test_digest_rejects_parts_that_are_not_strings(
    prompt: Any, llm_string: Any, scope: Any
) -> None:
    with pytest.raises(TypeError, match="must be a str"):
        digest(prompt, llm_string, scope)


def test_check_key_accepts_strings_and_names_the_wrong_part() -> None:
    check_key("p", "l")
    with pytest.raises(TypeError, match="llm_string must be a str, not int"):
        check_key("p", 1)


def _merged(*chunks: Any) -> Any:
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    return merged


def test_a_merged_stream_chunk_keys_as_the_message_it_equals() -> None:
    from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
    from langchain_core.messages.tool import tool_call_chunk

    usage: Any = {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}
    streamed = _merged(
        AIMessageChunk(content="Par", id="run-1", response_metadata={"model_name": "m"}),
        AIMessageChunk(content="is.", usage_metadata=usage, chunk_position="last"),
    )
    invoked = AIMessage("Paris.", id="other", usage_metadata=usage)
    ask = HumanMessage("Capital of France?")
    assert canonical_prompt(dumps([ask, streamed])) == canonical_prompt(dumps([ask, invoked]))
    # Tool calls streamed as tool_call_chunks: the same as the parsed tool calls.
    tools = _merged(
        AIMessageChunk(
            content="",
            tool_call_chunks=[tool_call_chunk(name="f", args='{"a": 1}', id="c1", index=0)],
        ),
        AIMessageChunk(content="", chunk_position="last"),
    )
    called = AIMessage("", tool_calls=tools.tool_calls)
    assert canonical_prompt(dumps([ask, tools])) == canonical_prompt(dumps([ask, called]))
    # What reaches the provider still splits keys: another text, another argument.
    other = AIMessage("Lyon.", usage_metadata=usage)
    assert canonical_prompt(dumps([ask, streamed])) != canonical_prompt(dumps([ask, other]))
    changed = AIMessage("", tool_calls=[{**tools.tool_calls[0], "args": {"a": 2}}])
    assert canonical_prompt(dumps([ask, tools])) != canonical_prompt(dumps([ask, changed]))
    # The next turn after a streamed answer: the same key as after the invoked one.
    then = HumanMessage("And of Spain?")
    assert canonical_prompt(dumps([ask, streamed, then])) == canonical_prompt(
        dumps([ask, invoked, then])
    )
    # Idempotent: a canonical form canonicalises to itself.
    once = canonical_prompt(dumps([ask, tools]))
    assert canonical_prompt(once) == once


def test_recent_keys_give_the_digest_and_stay_bounded() -> None:
    from gencache._keys import RecentKeys

    keys = RecentKeys(canonical=True)
    chat = dumps([HumanMessage("hi", id="run-1")])
    first = keys.key(chat, "llm", None)
    assert first.digest == digest(canonical_prompt(chat), "llm", None)
    assert keys.key(chat, "llm", None) is first  # remembered
    assert keys.key(chat, "llm", "tenant").digest == digest(canonical_prompt(chat), "llm", "tenant")
    assert RecentKeys(canonical=False).key(chat, "llm", None).digest == digest(chat, "llm", None)
    for i in range(3_000):  # more than it keeps: it starts over, answers stay right
        assert keys.key(f"p{i}", "llm", None).digest == digest(f"p{i}", "llm", None)
    huge = "x" * 300_000  # over the size it keeps: computed each time, never kept
    assert keys.key(huge, "llm", None).digest == digest(huge, "llm", None)
    with pytest.raises(TypeError, match="prompt must be a str"):
        keys.key(["not", "a", "str"], "llm", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="scope must be a str or None"):
        keys.key("p", "llm", 3)  # type: ignore[arg-type]
