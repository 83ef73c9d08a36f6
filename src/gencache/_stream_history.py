"""Stream chunks in a chat history, keyed as the messages they equal.

A streamed answer that an application keeps as history is a merged ``AIMessageChunk``;
the same answer from ``invoke`` is an ``AIMessage``. Providers receive the same message
for both, so :func:`gencache._chat_prompt.canonical_prompt` rewrites the first as the
second with :func:`unchunk` before canonicalising. Thread-safe (the memo is a dict of
atomic reads and writes; a race only costs a rewrite).
"""

from __future__ import annotations

import json
from typing import Final

__all__ = ["CHUNK", "MAX_UNCHUNK", "unchunk"]

# Where one serialized message ends and the next begins (LangChain's dumps() layout).
_BETWEEN = '}}, {"lc": 1, "type": "constructor", "id": ["langchain", "schema", "messages", "'
_MEMO_CHARS: Final = 4_000_000  # characters the memo below holds at most
_MEMO_TRIES: Final = 3  # message boundaries tried, from the end, for a known prefix

# Merged stream chunks in a history: keyed as the AIMessage they equal (see unchunk).
CHUNK = '"AIMessageChunk"'
"""What a prompt holds when a merged stream chunk is in it."""
_AI_ID: Final = ["langchain", "schema", "messages", "AIMessage"]
_CHUNK_EDITS: Final = (
    ('"messages", "AIMessageChunk"], "kwargs": {', '"messages", "AIMessage"], "kwargs": {'),
    ('"type": "AIMessageChunk"', '"type": "ai"'),
    (', "chunk_position": "last"', ""),
    (', "tool_call_chunks": []', ""),
)
_TOOL_CALL_CHUNKS = '"tool_call_chunks": ['
MAX_UNCHUNK: Final = 5_000_000
"""Characters of a prompt with tool-call stream chunks decoded at most to key them."""
# Prompts recently unchunked, as _memo keeps canonical forms: {length of a prefix "[m1,
# ..., mk" of a prompt: (that prefix, its unchunked form)}; bounded like _memo.
_unchunked: dict[int, tuple[str, str]] = {}
_unchunked_chars = [0]


def unchunk(p: str) -> str:
    """``p`` with every merged ``AIMessageChunk`` written as the ``AIMessage`` it equals.

    A streamed answer kept in the history is a chunk (class ``AIMessageChunk``, type
    ``"AIMessageChunk"``, a ``chunk_position``, maybe ``tool_call_chunks``); the same
    answer from ``invoke`` is an ``AIMessage``. Providers receive the same message for
    both, so both give one key. The usual chunk is rewritten by text replacement (four
    C-speed passes over ``p``; what is replaced has unescaped quotes, so it is JSON
    structure, never text inside a string); one with ``tool_call_chunks`` is decoded and
    re-encoded with ``dumps``' settings (at most :data:`MAX_UNCHUNK` characters; a longer
    one is left as it is).
    """
    head, rest = _unchunked_head(p)
    for old, new in _CHUNK_EDITS:
        rest = rest.replace(old, new)
    out = head + rest
    if _TOOL_CALL_CHUNKS in rest and len(out) <= MAX_UNCHUNK:
        messages = json.loads(out)
        changed = False
        for message in messages if isinstance(messages, list) else ():
            kwargs = message.get("kwargs") if isinstance(message, dict) else None
            if isinstance(kwargs, dict) and message.get("id") == _AI_ID:
                changed |= kwargs.pop("tool_call_chunks", None) is not None
        if changed:
            out = json.dumps(messages)
    if 2 * len(p) <= _MEMO_CHARS // 4:  # the next turn rewrites only what it adds
        if _unchunked_chars[0] + 2 * len(p) > _MEMO_CHARS:
            _unchunked.clear()
            _unchunked_chars[0] = 0
        _unchunked_chars[0] += 2 * len(p)
        _unchunked[len(p) - 1] = (p[:-1], out[:-1])
    return out


def _unchunked_head(p: str) -> tuple[str, str]:
    """Split ``p`` into the rewritten form of a recently unchunked prefix and the rest."""
    end = len(p)
    for _ in range(_MEMO_TRIES):
        cut = p.rfind(_BETWEEN, 0, end)
        if cut < 0:
            break
        known = _unchunked.get(cut + 2)
        if known is not None and p.startswith(known[0]):
            return known[1], p[cut + 2 :]
        end = cut + len(_BETWEEN) - 1
    return "", p
