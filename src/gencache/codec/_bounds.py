"""The limits of a payload, and the scan that enforces them on the raw text.

A decode checks them before parsing, so that its time and memory are bounded; the scan
counts brackets outside JSON strings with regular expressions that never backtrack.
"""

from __future__ import annotations

import re
from itertools import accumulate
from typing import Any, NamedTuple

from gencache.codec._errors import CodecError

__all__ = [
    "MAX_CONTAINERS",
    "MAX_DEPTH",
    "MAX_PAYLOAD_BYTES",
    "check_size",
    "check_structure",
    "too_deep",
]

MAX_DEPTH: int = 100
"""Deepest nesting of JSON arrays/objects accepted, the envelope's own object included."""

MAX_PAYLOAD_BYTES: int = 16 * 1024 * 1024
"""Largest payload accepted, in bytes (characters for a ``str``): 16 MiB.

A long text answer is well under 1 MB (128k output tokens are about 0.5 MB); the large
ones carry media as base64 (a 2048x2048 PNG is about 5-8 MB), which fits. Parsed JSON
takes up to about ten times its size in memory, so this also bounds a decode's memory."""

MAX_CONTAINERS: int = 1_000_000
"""Most JSON arrays and objects accepted in one payload, the envelope included.

Real payloads hold about one per 30 bytes (OpenAI logprobs with 20 alternatives per
token: about 550,000 in 16 MiB); a payload of empty ``[]`` holds one per 2 bytes, and each
costs 56 bytes or more once parsed."""

# A JSON string, possibly unterminated (then it runs to the end): linear, never backtracks.
# The bytes twin is exact on UTF-8 too: '"' and '\' never occur inside a multi-byte form.
_STRING_RE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_STRING_RE_B = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET_RE = re.compile(r"[^\[\]{}]+")
_NOT_BRACKET_RE_B = re.compile(rb"[^\[\]{}]+")
_BRACKET_DELTA = {"[": 1, "{": 1, "]": -1, "}": -1, 91: 1, 123: 1, 93: -1, 125: -1}


def too_deep() -> CodecError:
    """Return the error for data nested deeper than :data:`MAX_DEPTH`."""
    return CodecError(f"data nested deeper than {MAX_DEPTH} levels")


def check_size(size: int) -> None:
    """Refuse a payload of ``size`` bytes over :data:`MAX_PAYLOAD_BYTES`.

    Raises:
        CodecError: If it is over.
    """
    if size > MAX_PAYLOAD_BYTES:
        msg = f"payload of {size:,} bytes is over the limit of {MAX_PAYLOAD_BYTES:,}"
        raise CodecError(msg)


class _Lexicon(NamedTuple):
    """The regular expressions and literals of a JSON text, for ``str`` or for bytes."""

    strings: re.Pattern[Any]
    not_brackets: re.Pattern[Any]
    open_list: Any
    open_object: Any
    quote: Any
    empty: Any


_TEXT = _Lexicon(_STRING_RE, _NOT_BRACKET_RE, "[", "{", '"', "")
_BYTES = _Lexicon(_STRING_RE_B, _NOT_BRACKET_RE_B, b"[", b"{", b'"', b"")
# Up to this many quotes, brackets inside strings are subtracted string by string (no
# copy, about 0.5 us a string); above it, the strings are dropped in one pass (a copy).
_FEW_QUOTES = 20_000


def check_structure(data: bytes | bytearray | str, openers: int, *, depth: bool) -> None:
    """Refuse too many containers, and if ``depth`` too deep a nesting, outside strings.

    ``openers`` counts every ``[`` and ``{``, those inside strings too: an upper bound.

    Raises:
        CodecError: If there are more than :data:`MAX_CONTAINERS` arrays and objects,
            or (with ``depth``) they nest deeper than :data:`MAX_DEPTH`.
    """
    lex = _TEXT if isinstance(data, str) else _BYTES
    stripped: Any = None
    if openers > MAX_CONTAINERS:
        if data.count(lex.quote) <= _FEW_QUOTES:
            for found in lex.strings.finditer(data):
                start, end = found.span()
                openers -= data.count(lex.open_list, start, end)
                openers -= data.count(lex.open_object, start, end)
        else:
            stripped = lex.strings.sub(lex.empty, data)
            openers = stripped.count(lex.open_list) + stripped.count(lex.open_object)
        if openers > MAX_CONTAINERS:
            msg = f"payload holds {openers:,} arrays and objects, over the limit of "
            msg += f"{MAX_CONTAINERS:,}"
            raise CodecError(msg)
    if depth:
        if stripped is None:
            stripped = lex.strings.sub(lex.empty, data)
        brackets = lex.not_brackets.sub(lex.empty, stripped)
        if max(accumulate(map(_BRACKET_DELTA.__getitem__, brackets)), default=0) > MAX_DEPTH:
            msg = f"payload nested deeper than {MAX_DEPTH} levels"
            raise CodecError(msg)
