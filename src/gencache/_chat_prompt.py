"""Canonical chat prompts: the part of a cache key that LangChain's serialization varies.

For a chat model LangChain's prompt is ``langchain_core.load.dumps(messages)``: the whole
history, including fields that never reach the provider (the message ``id``,
``usage_metadata``, ``response_metadata``, and the ``total_cost`` that LangChain writes into a
message served from the cache), and JSON objects whose key order changes from run to run.
:func:`canonical_prompt` leaves those fields out and sorts the keys of nested objects, so that
the same conversation gives the same key on every run; any other prompt is returned as it is.
The rest of the key (checks, the digest) is :mod:`gencache._keys`; what splits a key and what
does not, and why: docs/keys.md.

The parser below reads LangChain's exact layout with string searches, which run in C, and
decodes only the nested values it keeps (to sort their keys). It skips message strings
without decoding them and checks the extent of the metadata it leaves out without decoding
it either (:mod:`gencache._json_spans`): on a 20-turn conversation that costs about
half of ``json.loads`` (57 us against 101 us on 25 KB).
"""

from __future__ import annotations

import json
import re
from typing import Final

from gencache._json_spans import one_object_each, scan
from gencache._prompt_memo import BETWEEN, PrefixMemo
from gencache._stream_history import CHUNK, unchunk

__all__ = ["canonical_prompt"]


# LangChain's dumps() of a message list is json.dumps with its default separators and
# ensure_ascii; each message is {"lc": 1, "type": "constructor", "id": [...], "kwargs": {}}.
_HEAD = '{"lc": 1, "type": "constructor", "id": ["langchain", "schema", "messages", "'
_PREFIX = "[" + _HEAD
_BETWEEN = BETWEEN  # the end of one message and the start of the next
# A message's head, up to its kwargs (for a message that _run does not read).
_MESSAGE = re.compile(re.escape(_HEAD) + r'([A-Za-z][A-Za-z0-9]*)"\], "kwargs": \{')
_KWARGS = len('"], "kwargs": {')
_CHUNK_CLASS = CHUNK.strip('"')  # the class of a merged stream chunk: AIMessageChunk
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# The unchanged paths: human and system messages whose content holds no quote character
# have nothing to rewrite; a lone human message is the most common prompt of all.
_HUMAN = _PREFIX + 'HumanMessage"], "kwargs": {"content": "'
_HUMAN_LEN = len(_HUMAN)
_HUMAN_END = '", "type": "human"}}]'
_PLAIN_HUMAN = (_HEAD + 'HumanMessage"], "kwargs": {"content": "', '", "type": "human"}}')
_PLAIN_SYSTEM = (_HEAD + 'SystemMessage"], "kwargs": {"content": "', '", "type": "system"}}')
# After a string content, the rest of a message whose only other field is its type.
_TYPE_ONLY = {"HumanMessage": _PLAIN_HUMAN[1], "SystemMessage": _PLAIN_SYSTEM[1]}
# The usual messages, told apart by their class's first letter, each as the text from its
# class name to its content's first character, and the rest after a plain content ("" for
# an AIMessage, whose other fields _run and _usual_ai read). See _run.
_HEAD_LEN = len(_HEAD)
_NEXT = ", " + _HEAD  # what follows a message that is not the last one
_CLOSE_NEXT = "}" + _NEXT  # a message's "}", then the next one
_OPEN_CONTENT = '"], "kwargs": {"content": "'


def _usual_run(cls: str) -> tuple[str, int, str, int, str, int]:
    """(text from the class name to the content, its length, the rest after a plain
    content or "" for an AIMessage, its length - 3, that rest with the next head, where
    that head starts after the content's closing quote + 1)."""
    tail = _TYPE_ONLY.get(cls)
    if tail is None:
        return cls + _OPEN_CONTENT, len(cls + _OPEN_CONTENT), "", 0, "", 0
    return (
        cls + _OPEN_CONTENT,
        len(cls + _OPEN_CONTENT),
        tail,
        len(tail) - 3,
        tail + _NEXT,
        len(tail) + 1,
    )


# By first letter; the lengths are kept (a len() per message cost ~5 % of a cold key).
_RUNS: Final = {cls[0]: _usual_run(cls) for cls in ("HumanMessage", "SystemMessage", "AIMessage")}
_DONE, _FAILED = -1, -2  # what _run returns at the end of the list, or for text not LangChain's

# How to_json() lays out an AIMessage, read by _usual_ai: content, additional_kwargs (if not
# empty), response_metadata, type, then name, id, tool_calls, invalid_tool_calls and
# usage_metadata in that order, except that empty tool-call lists move to the end.
_AI_KWARGS = ', "additional_kwargs": {'
_AI_METADATA = ', "response_metadata": {'
_AI_TYPE = '}, "type": "ai"'
_AI_STRINGS = (', "id": "', ', "name": "')
_AI_TOOLS = (', "tool_calls": ', ', "invalid_tool_calls": ')
_AI_USAGE = ', "usage_metadata": {'
_AI_TYPED_USAGE = _AI_TYPE + _AI_USAGE
_AI_AFTER_USAGE = ('}, "tool_calls": ', '}, "invalid_tool_calls": ', _BETWEEN)
_AI_REST = '}, "tool_calls": [], "invalid_tool_calls": []}'  # usage's end, then the last fields
_AI_TYPE_KEPT = _AI_TYPE[1:]  # what is kept of it: ', "type": "ai"'
_AI_METADATA_LEN = len(_AI_METADATA)
_AI_TYPED_USAGE_LEN, _AI_REST_LEN = len(_AI_TYPED_USAGE), len(_AI_REST)
_WINDOW = 65_536  # longest metadata object delimited without decoding it

# What becomes of each message field; fields not listed are kept as they are.
_DROP, _KEEP, _CONTENT = 0, 1, 2
_FIELDS: Final = {
    "id": _DROP,
    "response_metadata": _DROP,
    "usage_metadata": _DROP,  # also holds LangChain's hit marker, total_cost = 0
    "content": _CONTENT,
    "type": _KEEP,
    "name": _KEEP,
    "additional_kwargs": _KEEP,
    "tool_calls": _KEEP,
    "invalid_tool_calls": _KEEP,
    "tool_call_id": _KEEP,
    "artifact": _KEEP,
    "status": _KEEP,
    "role": _KEEP,
}
# Content-block ids that LangChain generates (``lc_`` + a new uuid4 for each block built with
# create_text_block() and the like); integrations do not forward them.
_AUTO_ID = "lc_"

_encode = json.JSONEncoder(sort_keys=True).encode  # LangChain's settings, keys sorted

# Recently canonicalised prompts, so that a conversation costs the messages it adds, not its
# whole history, on every turn: the canonical form of each (None when it is unchanged).
_memo: PrefixMemo[str | None] = PrefixMemo()

Edits = list[tuple[int, int, str]]  # (start, stop, replacement) spans of the prompt, in order
Regions = list[tuple[int, int]]  # spans of metadata objects left out without being decoded


def canonical_prompt(prompt: str) -> str:
    """Return the form of ``prompt`` that keys a cache entry.

    When ``prompt`` is LangChain's serialized message list, the result leaves out, in every
    message, the fields never sent to a provider (``id``, ``usage_metadata``,
    ``response_metadata``, and the ``lc_`` ids LangChain generates for content blocks) and
    sorts the keys of every JSON object nested in a message (tool-call ``args``,
    ``additional_kwargs``, content blocks, tool results). Everything else is kept byte for
    byte, so any difference in what reaches the provider gives a different result. The
    result is what ``dumps`` writes for the messages without those fields (nested keys
    sorted), so canonicalising it again returns it unchanged. Any other string, and a list
    not in LangChain's exact layout, is returned unchanged (the same object).

    Message strings are delimited, not decoded: a malformed escape inside one is kept as it
    is; so are the insides of the metadata left out (only its extent is checked). Never
    raises for a ``str``. Thread-safe.

    Cost: a few string comparisons for a string that does not start like a message list,
    and for human and system messages with no quote in their content; otherwise
    O(len(prompt)) (a 20-turn, 25 KB conversation: 4.3-4.4 % of a cache-hit ``invoke``),
    O(size of the new messages) for the next turn of a conversation canonicalised recently
    (1.2-1.5 %), and one memory comparison for a prompt canonicalised recently (a lookup
    followed by its update).
    """
    if prompt.startswith(_HUMAN):
        # The first quote after the content's opening one closes it: nothing to rewrite.
        if prompt[prompt.find('"', _HUMAN_LEN) :] == _HUMAN_END:
            return prompt
    elif not prompt.startswith(_PREFIX):
        return prompt
    try:
        return _canonical_messages(prompt)
    except (IndexError, ValueError, RecursionError, StopIteration):
        # Truncated text, invalid JSON in a nested value, nesting too deep to decode: not
        # LangChain's serialization, so keyed as it is.
        return prompt


def _canonical_messages(p: str, *, unchunked: bool = False) -> str:
    if p[-1] != "]":
        return p
    known = _memo.whole(p)  # first: a prompt seen again costs one memory comparison
    if known is not None:
        return known[1] or p
    if _only_plain(p):
        return p
    out, done, pos = _resume(p)
    edits: Edits = []
    regions: Regions = []
    chunks = not unchunked
    try:
        if not _parse(p, pos, edits, regions, chunks) or not one_object_each(p, regions):
            # Metadata that could not be delimited without decoding it (a bracket or an
            # escape in one of its strings, text that imitates what follows it): decode it.
            edits.clear()
            if not _parse(p, pos, edits, None, chunks):
                return p
    except _Chunked:  # merged stream chunks in the history (found by the parse, which
        # costs nothing where `CHUNK in p` read the whole prompt: ~5 % of a cold key)
        result = _canonical_messages(unchunk(p), unchunked=True)
        _remember(p, None if result is p else result)
        return result
    if not out and not edits:
        _remember(p, None)
        return p
    for start, stop, text in edits:
        out.append(p[done:start])
        out.append(text)
        done = stop
    out.append(p[done:])
    result = "".join(out)
    _remember(p, result)
    return result


def _only_plain(p: str) -> bool:
    """Tell whether ``p`` lists only human and system messages with quote-free content.

    Such a prompt has nothing to rewrite. If a content holds an escaped quote the parser
    would read it differently, and finds the text is not LangChain's: unchanged too.
    """
    pos, last = 1, len(p) - 1
    while True:
        if p.startswith(_PLAIN_HUMAN[0], pos):
            head, tail = _PLAIN_HUMAN
        elif p.startswith(_PLAIN_SYSTEM[0], pos):
            head, tail = _PLAIN_SYSTEM
        else:
            return False
        close = p.find('"', pos + len(head))
        if not p.startswith(tail, close):
            return False
        pos = close + len(tail)
        if pos == last:
            return True
        if not p.startswith(", ", pos):
            return False
        pos += 2


def _resume(p: str) -> tuple[list[str], int, int]:
    """Find a recently canonicalised prefix of ``p`` among its last message boundaries.

    Returns the output so far, how much of ``p`` it accounts for, and where the next message
    starts: ``([], 0, 1)`` when there is none.
    """
    found = _memo.prefix(p)
    if found is None:
        return [], 0, 1
    done, canonical = found
    if canonical is None:
        return [], 0, done + 2
    return [canonical[:-1]], done, done + 2


class _Chunked(Exception):  # noqa: N818 - a signal, not an error
    """Raised by :func:`_parse` at a merged stream chunk: the prompt is unchunked first."""


def _parse(p: str, pos: int, edits: Edits, regions: Regions | None, chunks: bool) -> bool:
    """Parse the messages from ``pos`` to the end of ``p``, recording edits.

    With ``regions``, the metadata objects left out are delimited by the text LangChain
    writes after them and recorded there, to be checked all at once by
    :func:`gencache._json_spans.one_object_each`; with None they are decoded. The usual
    layouts (a string content, then only the type, or an AIMessage as to_json() writes
    it) are read by :func:`_run` in few steps; any other message by :func:`_kwargs`,
    which reads every order and layout of fields.
    """
    last = len(p) - 1
    while True:
        pos = _run(p, pos, edits, regions)
        if pos < 0:
            return pos == _DONE
        head = _MESSAGE.match(p, pos)
        if head is None:
            return False
        if chunks and head[1] == _CHUNK_CLASS:
            raise _Chunked
        pos = head.end(1) + _KWARGS
        # _run read every message in a usual layout: this one is in another.
        stop = _kwargs(p, pos, edits)
        if stop < 0:
            return False
        if p[stop + 1] != "}":
            return False
        if stop + 2 == last:
            return True
        if p[stop + 2 : stop + 4] != ", ":
            return False
        pos = stop + 4


def _run(p: str, pos: int, edits: Edits, regions: Regions | None) -> int:  # noqa: PLR0912
    """Parse the messages from ``pos`` for as long as they are in a usual layout.

    Returns where the first message in another layout starts (for _parse to read it),
    :data:`_DONE` after the last message, or :data:`_FAILED` where the text is not
    LangChain's. A message gets the edits and the verdict that the regular expression
    and per-layout steps it replaced gave it (the same keys on 12,000 generated and
    damaged prompts), in about half their steps: its class by its first letter and one
    comparison instead of a regular expression, no call for a plain message or for an
    AIMessage in its commonest layout, and the end of each message checked together
    with the next one's head. A 20-turn conversation's cold key: 92 -> 57 us. One frame
    on purpose: a call per message cost more than its branches.
    """
    last = len(p) - 1
    if not p.startswith(_HEAD, pos):
        return _FAILED  # what _MESSAGE would not match either
    while True:
        at = pos + _HEAD_LEN
        usual = _RUNS.get(p[at])
        if usual is None or not p.startswith(usual[0], at):
            return pos
        start = at + usual[1]  # the content's first character
        after = p.find('"', start) + 1
        if after > 0 and p[after - 2] == "\\":
            after = _string_end(p, start - 1)
        if after <= 0:
            return pos
        tail = usual[2]
        if tail:  # a human or system message: nothing to rewrite
            if p.startswith(usual[4], after - 1):  # its rest, ", " and the next head
                pos = after + usual[5]
                continue
            if not p.startswith(tail, after - 1):
                return pos
            stop = after + usual[3]  # its kwargs' "}", followed by its own
        else:
            stop = -1
            if regions is not None and p.startswith(_AI_METADATA, after):
                # The commonest layout of all: metadata, type, usage, no tool calls. The
                # message's end first, then the usage back from it (short, where the
                # metadata before it is long: 600 -> 460 ns). A search may stop inside a
                # string of the metadata: one_object_each then finds that a region is
                # not one object, and the prompt is decoded.
                metadata = after + _AI_METADATA_LEN - 1
                rest = p.find(_AI_REST, metadata, metadata + 2 * _WINDOW)
                typed = p.rfind(_AI_TYPED_USAGE, metadata, rest) if rest >= 0 else -1
                if typed >= 0:  # both left out, and the type between them kept, in one edit
                    edits.append((after, rest + 1, _AI_TYPE_KEPT))
                    regions.append((metadata, typed + 1))
                    regions.append((typed + _AI_TYPED_USAGE_LEN - 1, rest + 1))
                    stop = rest + _AI_REST_LEN - 1
            if stop < 0:
                stop = _usual_ai(p, after, edits, regions)
                if stop < 0:
                    return pos
            if p.startswith(_CLOSE_NEXT, stop + 1):  # "}", ", " and the next head
                pos = stop + 4
                continue
            if p[stop + 1] != "}":
                return _FAILED
        if stop + 2 == last:
            return _DONE
        return _FAILED  # no ", " here, or no message after it: _parse's verdicts


def _usual_ai(p: str, at: int, edits: Edits, regions: Regions | None) -> int:
    """Parse an AIMessage's fields after its string content; -1 (no edits) if unusual."""
    # (The commonest layout, metadata, type, usage and no tool calls, is read by _run.)
    mine: Edits = []
    found: Regions = []
    if p.startswith(_AI_KWARGS, at):
        at = _nested(p, at + len(_AI_KWARGS) - 1, _KEEP, mine)
    if not p.startswith(_AI_METADATA, at):
        return -1
    stop = _metadata_end(p, at + len(_AI_METADATA) - 1, _AI_TYPE, found, regions)
    if stop < 0:
        return -1
    mine.append((at, stop, ""))
    at = stop + len(_AI_TYPE) - 1
    if p.startswith(_AI_USAGE, at):  # the usual rest: usage, then the empty tool-call lists
        stop = _metadata_end(p, at + len(_AI_USAGE) - 1, _AI_REST, found, regions)
        if stop >= 0:
            mine.append((at, stop, ""))
            at = stop + len(_AI_REST) - 2
    else:
        stop = -1
    if stop < 0:
        at = _ai_fields(p, at, mine, found, regions)
        if at < 0:
            return -1
    edits.extend(mine)
    if regions is not None:
        regions.extend(found)
    return at


def _metadata_end(p: str, start: int, after: str, found: Regions, regions: Regions | None) -> int:
    """Return where the metadata object at ``start``, followed by ``after``, ends; or -1."""
    if regions is None:
        stop = scan(p, start)[1]
        return stop if p.startswith(after, stop - 1) else -1
    stop = p.find(after, start, start + _WINDOW) + 1
    if stop > 0:
        found.append((start, stop))
        return stop
    return -1


def _ai_fields(p: str, at: int, mine: Edits, found: Regions, regions: Regions | None) -> int:
    """Parse an AIMessage's fields after ``type`` in any of to_json()'s orders."""
    while p[at] == ",":
        if p.startswith(_AI_USAGE, at):
            stop = _usage_end(p, at + len(_AI_USAGE) - 1, found, regions)
            if stop < 0:
                return -1
            mine.append((at, stop, ""))
            at = stop
        elif p.startswith(_AI_STRINGS, at):  # id (left out) or name (kept)
            dropped = p[at + 3] == "i"
            stop = _string_end(p, at + 8 if dropped else at + 10)
            if stop < 0:
                return -1
            if dropped:
                mine.append((at, stop, ""))
            at = stop
        elif p.startswith(_AI_TOOLS, at):
            at = p.find(": ", at) + 2
            at = at + 2 if p.startswith("[]", at) else _nested(p, at, _KEEP, mine)
        else:
            return -1
    return at if p[at] == "}" else -1


def _usage_end(p: str, usage: int, found: Regions, regions: Regions | None) -> int:
    """Return where the usage_metadata object at ``usage`` ends, or -1 if that is unclear."""
    if regions is None:
        return scan(p, usage)[1]
    stop = -1
    for follower in _AI_AFTER_USAGE:  # each keeps to before the earliest end found so far
        at = p.find(follower, usage, usage + _WINDOW if stop < 0 else stop)
        if at >= 0:
            stop = at if follower is _BETWEEN else at + 1
    if stop < 0 and p.endswith("}}]"):
        stop = len(p) - 3  # the last message: its kwargs close three from the end
    if stop >= 0:
        found.append((usage, stop))
    return stop


def _kwargs(p: str, pos: int, edits: Edits) -> int:
    """Parse one message's kwargs object from ``pos`` (after its ``{``), recording edits.

    Any order and layout of fields: strings are delimited, other values decoded. Returns the
    index of the object's closing ``}``, or -1 if it is not LangChain's layout.
    """
    if p[pos] == "}":
        return pos
    kept = False  # whether an earlier field is kept, so owns the ", " before this one
    while True:
        colon = p.find('": ', pos + 1) if p[pos] == '"' else -1
        if colon < 0:
            return -1
        kind = _FIELDS.get(p[pos + 1 : colon])
        if kind is None:
            if _FIELD_NAME.fullmatch(p, pos + 1, colon) is None:
                return -1
            kind = _KEEP
        start = colon + 3
        if p[start] == '"':
            stop = _string_end(p, start)
        else:
            stop = scan(p, start)[1] if kind == _DROP else _nested(p, start, kind, edits)
        if stop < 0:
            return -1
        after = p[stop]
        if kind == _DROP:  # the ", " that joins it to its neighbours goes with it
            edits.append(
                (pos - 2, stop, "") if kept else (pos, stop + 2 if after == "," else stop, "")
            )
        else:
            kept = True
        if after == "}":
            return stop
        if after != "," or p[stop + 1] != " ":
            return -1
        pos = stop + 2


def _nested(p: str, start: int, kind: int, edits: Edits) -> int:
    """Decode the kept non-string value at ``start``; record its sorted form if it differs."""
    if p.startswith(("[]", "{}"), start):
        return start + 2
    value, stop = scan(p, start)
    if p[start] in "[{":
        if kind == _CONTENT and isinstance(value, list):
            for block in value:
                if isinstance(block, dict):
                    block_id = block.get("id")
                    if isinstance(block_id, str) and block_id.startswith(_AUTO_ID):
                        del block["id"]
        text = _encode(value)
        if text != p[start:stop]:
            edits.append((start, stop, text))
    return stop


def _string_end(p: str, start: int) -> int:
    """Return the index after the string that opens at ``start``, or -1 if it is not closed."""
    quote = p.find('"', start + 1)
    while quote > 0 and p[quote - 1] == "\\":
        before = quote - 2
        while p[before] == "\\":
            before -= 1
        if (quote - 1 - before) % 2 == 0:  # an even run of backslashes only escapes itself
            break
        quote = p.find('"', quote + 1)
    return quote + 1 if quote > 0 else -1


def _remember(p: str, canonical: str | None) -> None:
    _memo.remember(p, canonical, len(p) if canonical is None else 2 * len(p))
