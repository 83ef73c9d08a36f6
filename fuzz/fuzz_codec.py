"""Coverage-guided fuzzing of ``gencache.codec.decode_entry`` with atheris; never run by pytest.

atheris is not a dependency of gencache; install it into the project's venv first::

    .venv/bin/python -m pip install atheris
    mkdir -p /tmp/codec-corpus
    .venv/bin/python fuzz/fuzz_codec.py /tmp/codec-corpus -dict=fuzz/codec.dict \\
        -max_total_time=60 -rss_limit_mb=4096

An empty corpus directory given first is seeded with valid payloads of every shape.
The oracle, for every input: ``decode_entry`` either raises ``CodecError``, or returns a
non-empty list of allow-listed generations holding plain, finite JSON data and a plain
``meta`` dict, which ``encode`` writes again and ``decode_entry`` reads back equal. Any
other exception (or a crash, hang or memory blow-up, which libFuzzer reports itself) is a
finding, saved as ``crash-*`` in the working directory.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import atheris

with atheris.instrument_imports(include=["gencache", "langchain_core"]):
    from langchain_core.messages import (
        AIMessage,
        AIMessageChunk,
        ChatMessage,
        ChatMessageChunk,
        FunctionMessage,
        FunctionMessageChunk,
        HumanMessage,
        HumanMessageChunk,
        SystemMessage,
        SystemMessageChunk,
        ToolMessage,
        ToolMessageChunk,
    )
    from langchain_core.outputs import (
        ChatGeneration,
        ChatGenerationChunk,
        Generation,
        GenerationChunk,
    )

    from gencache.codec import CodecError, decode_entry, encode

_MESSAGES = (
    *(AIMessage, HumanMessage, SystemMessage, ToolMessage, ChatMessage, FunctionMessage),
    *(AIMessageChunk, HumanMessageChunk, SystemMessageChunk, ToolMessageChunk),
    *(ChatMessageChunk, FunctionMessageChunk),
)
_GENERATIONS = (Generation, ChatGeneration, GenerationChunk, ChatGenerationChunk)


def _plain(value: Any) -> None:
    """Raise unless ``value`` is plain, finite JSON data."""
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise AssertionError(f"key {key!r}")
            _plain(item)
    elif kind is list:
        for item in value:
            _plain(item)
    elif kind is float:
        if not math.isfinite(value):
            raise AssertionError(f"non-finite {value!r}")
    elif kind not in (str, int, bool, type(None)):
        raise AssertionError(f"{kind.__name__} in decoded data")


def _check(out: Any, meta: Any) -> None:
    if type(out) is not list or not out:
        raise AssertionError(f"decode returned {out!r:.40}")
    if type(meta) is not dict:
        raise AssertionError(f"decode_entry returned meta {type(meta).__name__}")
    _plain(meta)
    for gen in out:
        if type(gen) not in _GENERATIONS:
            raise AssertionError(f"decode built {type(gen).__name__}")
        _plain(gen.generation_info)
        if isinstance(gen, ChatGeneration):
            message = gen.message
            if type(message) not in _MESSAGES:
                raise AssertionError(f"decode built {type(message).__name__}")
            for name in type(message).model_fields:
                _plain(getattr(message, name))
    # Whatever decode accepts, encode writes identically.
    if decode_entry(encode(out, meta=meta)) != (out, meta):
        raise AssertionError("decode_entry(encode(decode_entry(x))) != decode_entry(x)")


def fuzz_one_input(data: bytes) -> None:
    try:
        out, meta = decode_entry(data)
    except CodecError:
        return
    _check(out, meta)


def _seeds() -> list[bytes]:
    tool_call = {"name": "f", "args": {"x": [1, 2.5, None]}, "id": "1", "type": "tool_call"}
    legacy: dict[str, Any] = {"example": True}  # the extra LangChain keeps
    chunk = AIMessageChunk(
        content="a",
        tool_call_chunks=[
            {"name": "f", "args": '{"x":', "id": "1", "index": 0, "type": "tool_call_chunk"}
        ],
        chunk_position="last",
    )
    samples: list[list[Generation]] = [
        [ChatGenerationChunk(message=chunk), GenerationChunk(text="b")],
        [ChatGeneration(message=ToolMessageChunk(content="t", tool_call_id="1"))],
        [Generation(text="hello", generation_info={"finish_reason": "stop", "n": [1]})],
        [ChatGeneration(message=AIMessage(content="hi", tool_calls=[tool_call], id="run-1"))],
        [ChatGeneration(message=AIMessage(content=[{"type": "text", "text": "x"}, "y"]))],
        [ChatGeneration(message=ToolMessage(content="42", tool_call_id="1", artifact=[1]))],
        [ChatGeneration(message=ChatMessage(content="c", role="critic", **legacy))],
        [ChatGeneration(message=FunctionMessage(content="{}", name="fn"))],
        [Generation(text="\ud800 é 🙂 \x00"), ChatGeneration(message=HumanMessage(content="q"))],
        [ChatGeneration(message=SystemMessage(content="s", additional_kwargs={"k": {"a": []}}))],
    ]
    meta = {"key": "ab" * 32, "prompt": "p", "created_at": 1.5, "expires_at": None}
    return [encode(sample) for sample in samples] + [encode(samples[1], meta=meta)]


def main() -> None:
    corpus = next((Path(a) for a in sys.argv[1:] if not a.startswith("-")), None)
    if corpus is not None and corpus.is_dir() and not any(corpus.iterdir()):
        for i, seed in enumerate(_seeds()):
            (corpus / f"seed-{i}.json").write_bytes(seed)
    atheris.Setup(sys.argv, fuzz_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
