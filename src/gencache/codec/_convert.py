"""Values inside the generations: the plain-JSON check (fast path) and the faithful form.

Plain JSON data is checked in one walk and written as it is; anything else takes the slow
path, :func:`jsonable`, which converts it to the JSON form documented in
:mod:`gencache.codec` or refuses it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any, cast

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from gencache.codec._bounds import MAX_DEPTH, too_deep
from gencache.codec._errors import CodecError, NotPlain
from gencache.codec._text import ENCODER

__all__ = ["check_json", "jsonable", "plain_meta"]

_SCALARS = frozenset({str, int, bool, type(None)})
_JSON_TYPES = frozenset({dict, list, str, int, float, bool, type(None)})


def check_json(value: Any, depth: int) -> None:
    """Check that the dict or list ``value``, nested ``depth`` deep, is plain finite JSON.

    Raises:
        CodecError: If it is nested too deep or holds a non-finite float.
        NotPlain: If it holds anything else that is not plain JSON data.
    """
    if depth > MAX_DEPTH:
        raise too_deep()
    if isinstance(value, dict):
        for key in value:
            if type(key) is not str and not isinstance(key, str):
                raise NotPlain
        value = value.values()
    for item in value:
        kind = type(item)
        if kind in _SCALARS:
            continue
        if kind is dict or kind is list:
            check_json(item, depth + 1)
        elif isinstance(item, float):
            if not math.isfinite(item):
                msg = f"non-finite float {item!r} is not allowed"
                raise CodecError(msg)
        elif isinstance(item, (dict, list)):
            check_json(item, depth + 1)
        elif not isinstance(item, (str, int)):  # str/int subclasses (enums) print as JSON
            raise NotPlain


def _render(value: Any) -> Any:
    """Return pydantic's JSON-mode rendering of ``value`` (one level: a JSON value)."""
    try:
        out = to_jsonable_python(value)
    except Exception as exc:  # pydantic-core raises several types
        msg = f"value of type {type(value).__name__} has no JSON form: {str(exc)[:100]}"
        raise CodecError(msg) from exc
    if type(out) not in _JSON_TYPES:
        msg = f"value of type {type(value).__name__} has no JSON form"
        raise CodecError(msg)
    return out


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    rendered = _render({key: None})  # pydantic renders dict keys as strings
    return cast("str", next(iter(rendered)))


def jsonable(value: Any, depth: int) -> Any:
    """Return ``value``, nested ``depth`` deep, in its faithful JSON form (the slow path).

    Raises:
        CodecError: If it has no JSON form, or it is nested too deep.
    """
    kind = type(value)
    if kind in _SCALARS:
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            msg = f"non-finite float {value!r} is not allowed"
            raise CodecError(msg)
        return value
    if isinstance(value, (str, int)):  # str/int subclasses (enums) print as JSON
        return value
    if depth > MAX_DEPTH:
        raise too_deep()
    if isinstance(value, Mapping):  # dict, and what pydantic cannot render (mappingproxy)
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = _key(key)
            if name in out:
                msg = f"two dict keys both become the JSON string {name!r:.40}"
                raise CodecError(msg)
            out[name] = jsonable(item, depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [jsonable(item, depth + 1) for item in value]
    if isinstance(value, (set, frozenset)):
        items = [jsonable(item, depth + 1) for item in value]
        return sorted(items, key=ENCODER.encode)  # hash order would change the bytes
    if isinstance(value, Iterator):  # pydantic would consume it: a side effect, not a form
        msg = f"value of type {kind.__name__} is an iterator, which storing would consume"
        raise CodecError(msg)
    out = jsonable(_render(value), depth)
    if isinstance(value, BaseModel):
        _check_rebuilds(value, out)
    return out


def _check_rebuilds(model: BaseModel, data: Any) -> None:
    """Refuse a model that its JSON form does not rebuild equal.

    On a hit, langchain-openai's structured-output parser rebuilds the model from the
    stored dict with ``Model(**d)``: a model in strict mode (which refuses ``"2024-05-01"``
    for a ``date``), or one whose serializers drop or reshape fields, would make every hit
    raise. Refused, the write is skipped and the next call is a miss instead.
    """
    try:
        same = type(model).model_validate(data) == model
    except Exception:  # the model's own validators may raise anything
        same = False
    if not same:
        msg = f"{type(model).__name__} is not rebuilt equal from its JSON form"
        raise CodecError(msg)


def plain_meta(meta: object) -> dict[str, Any]:
    """Return ``meta`` as a new dict, after checking that it is plain JSON data.

    Raises:
        CodecError: If it is not a mapping of plain JSON data.
    """
    if not isinstance(meta, Mapping):
        msg = f"meta must be a mapping, not {type(meta).__name__}"
        raise CodecError(msg)
    out = dict(meta)
    try:
        check_json(out, 2)
    except NotPlain:
        msg = "meta must be plain JSON data (str keys; str, int, float, bool, None, list, dict)"
        raise CodecError(msg) from None
    return out
