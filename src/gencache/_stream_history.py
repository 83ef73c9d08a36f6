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

from gencache._prompt_memo import PrefixMemo

__all__ = ["CHUNK", "MAX_UNCHUNK", "unchunk"]


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
# Prompts recently unchunked, each with its unchunked form without the closing "]".
_unchunked: PrefixMemo[str] = PrefixMemo()


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
    _unchunked.remember(p, out[:-1], 2 * len(p))  # the next turn rewrites only what it adds
    return out


def _unchunked_head(p: str) -> tuple[str, str]:
    """Split ``p`` into the rewritten form of a recently unchunked prefix and the rest."""
    found = _unchunked.prefix(p)
    if found is None:
        return "", p
    done, head = found
    return head, p[done:]
