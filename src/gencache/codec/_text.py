"""The JSON text: the one encoder and decoder, :func:`dump` and the bounded :func:`parse`."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from gencache.codec._bounds import MAX_DEPTH, MAX_PAYLOAD_BYTES, check_size, check_structure
from gencache.codec._errors import CodecError

__all__ = ["ENCODER", "dump", "parse"]

_OPTIONS: dict[str, Any] = {
    "allow_nan": False,
    "sort_keys": True,
    "separators": (",", ":"),
    "check_circular": False,  # check_json bounds the depth first
}
ENCODER = json.JSONEncoder(ensure_ascii=False, **_OPTIONS)
_ASCII_ENCODER = json.JSONEncoder(ensure_ascii=True, **_OPTIONS)  # for lone surrogates
# A high surrogate code point followed by a low one: written as two \uXXXX escapes, JSON
# decoders join them into one character, so such a str cannot round-trip.
_SPLIT_PAIR_RE = re.compile("[\ud800-\udbff][\udc00-\udfff]")


def _reject_constant(name: str) -> Any:
    msg = f"non-finite number {name} is not allowed"
    raise CodecError(msg)


def _finite_float(text: str) -> float:
    # json turns a finite-looking literal out of float range (1e400, or 10**5 digits) into
    # inf, which encode refuses: such a payload was not written by encode.
    value = float(text)
    if not math.isfinite(value):
        msg = f"number {text[:20]}... overflows a float"
        raise CodecError(msg)
    return value


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def dump(envelope: dict[str, Any]) -> bytes:
    """Return the payload of ``envelope``, plain finite JSON data, as UTF-8 JSON bytes.

    Raises:
        CodecError: If a string holds a surrogate pair as two code points.
    """
    text = ENCODER.encode(envelope)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: keep it as a \uXXXX escape
        if _SPLIT_PAIR_RE.search(text):  # only here: text without surrogates pays nothing
            msg = "a string holds a surrogate pair as two code points, which JSON joins"
            raise CodecError(msg) from None
        return _ASCII_ENCODER.encode(envelope).encode("ascii")


def parse(data: bytes | bytearray | memoryview | str) -> Any:
    """Return the JSON value of ``data``, after checking its bounds on the raw text.

    Raises:
        CodecError: If ``data`` is not bytes or str, is out of bounds, is not UTF-8 or
            is not strict JSON.
    """
    payload: object = data  # checked at run time: callers may pass anything
    if type(payload) is not bytes:  # bytes, the common case, skips these tests
        if isinstance(payload, memoryview):  # no .count(): copy it, once it is known small
            check_size(payload.nbytes)
            payload = payload.tobytes()
        elif not isinstance(payload, (bytes, bytearray, str)):
            msg = f"payload must be bytes or str, not {type(payload).__name__}"
            raise CodecError(msg)
    size = len(payload)
    if size > MAX_PAYLOAD_BYTES:
        check_size(size)
    if isinstance(payload, str):
        text = payload
        openers = text.count("[") + text.count("{")
        if openers > MAX_DEPTH:  # else no bound can be reached (MAX_DEPTH < MAX_CONTAINERS)
            check_structure(text, openers, depth=True)
    else:
        openers = payload.count(b"[") + payload.count(b"{")
        if openers > MAX_DEPTH:  # checked on the bytes: a refusal copies nothing
            check_structure(payload, openers, depth=True)
        try:
            text = str(payload, "utf-8")
        except UnicodeDecodeError as exc:
            msg = "payload is not valid UTF-8"
            raise CodecError(msg) from exc
    try:
        return _DECODER.decode(text)
    except CodecError:
        raise
    except (ValueError, RecursionError) as exc:
        msg = f"payload is not valid JSON: {str(exc)[:100]}"
        raise CodecError(msg) from exc
