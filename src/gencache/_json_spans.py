"""Tell whether spans of a JSON text are whole JSON objects, without decoding them.

:mod:`gencache._chat_prompt` leaves metadata objects out of a prompt after finding their
extent by searching for the text that follows them; this module checks, in one pass over
all of them, that each such span is exactly one object (a search could have stopped inside
one of its strings). Thread-safe: the only state is a bounded cache of shapes, where a race
costs a recomputation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from json.scanner import make_scanner

__all__ = ["one_object_each", "scan"]

#: One JSON value at an index, in C: ``scan(text, index) -> (value, end)``. typeshed types
#: the scanner's context as a scanner rather than the decoder whose settings it reads.
scan = make_scanner(json.JSONDecoder())  # type: ignore[arg-type]
_NOT_MARKS = bytes(c for c in range(256) if c not in b'\x00"[]{}')  # NUL separates spans
_SHAPES: dict[bytes, bool] = {}  # quotes and brackets seen by one_object_each: one object?


def one_object_each(p: str, regions: Sequence[tuple[int, int]]) -> bool:
    """Tell whether each ``p[start:stop]`` of ``regions`` is one JSON object.

    Only where each starts and ends matters, since it is left out. With no backslash in the
    text, every quote opens or closes a string; keeping only quotes and brackets, then
    removing each string (now an adjacent pair of quotes), leaves the bracket structure,
    which must be one ``{...}``. A string that holds a bracket leaves a quote behind and
    fails that test. One pass over all the regions, joined by NULs, costs far less than one
    per region; if it fails, each region is checked on its own, decoding it if need be.
    """
    if not regions:
        return True
    text = "\x00".join([p[start:stop] for start, stop in regions])
    if "\\" not in text and text.isascii():
        marks = text.encode("ascii").translate(None, _NOT_MARKS).split(b"\x00")
        if len(marks) == len(regions) and all(map(_one_object, marks)):
            return True
    # A loop, not all() over a generator: the scanner's StopIteration (no JSON value there)
    # must reach the caller as itself, not as a generator's RuntimeError.
    for start, stop in regions:  # noqa: SIM110
        if not _object(p, start, stop):
            return False
    return True


def _object(p: str, start: int, stop: int) -> bool:
    text = p[start:stop]
    plain = "\\" not in text and text.isascii()
    if plain and _one_object(text.encode("ascii").translate(None, _NOT_MARKS)):
        return True
    return scan(p, start)[1] == stop  # decode it after all


def _one_object(marks: bytes) -> bool:
    """Tell whether quotes and brackets ``marks`` are those of one object (results cached)."""
    known = _SHAPES.get(marks)  # metadata of one provider repeats its shape: most are known
    if known is None:
        known = _one_group(marks.replace(b'""', b""))
        if len(_SHAPES) >= 1024:
            _SHAPES.clear()
        _SHAPES[marks] = known
    return known


def _one_group(shape: bytes) -> bool:
    if shape[:1] != b"{" or shape[-1:] != b"}":
        return False
    inner = shape[1:-1]
    while inner:
        shorter = inner.replace(b"{}", b"").replace(b"[]", b"")
        if len(shorter) == len(inner):
            return False
        inner = shorter
    return True
