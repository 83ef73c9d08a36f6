"""``cache.explain()``: why a lookup hits or misses, in the terms a user thinks in.

A miss is explained against the nearest stored entry: the fields of the ``llm_string``
(model, temperature, stop, bound tools...) and of the prompt (message count, roles,
contents) that differ, the entry's scope, its expiry. The comparison never changes the
cache. It reads at most :data:`MAX_SCANNED` entries and compares only pieces of at most
:data:`MAX_FIELD` characters, so it is bounded in time and memory whatever is stored.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from gencache._document import open_record
from gencache._expiries import Expiries
from gencache._protocol import Key, Store

__all__ = [
    "MAX_SCANNED",
    "Candidate",
    "Explanation",
    "common_prefix",
    "describe_differences",
    "explain",
    "explain_store",
]

MAX_SCANNED = 10_000
"""Stored entries compared at most by one ``explain`` call."""

MAX_FIELD = 1_000_000
"""Characters of a prompt or llm_string parsed at most; longer ones are compared as text."""

_SHOWN = 40  # characters of a value shown in a difference


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a lookup would hit or miss.

    Attributes:
        hit: Whether :meth:`lookup` would answer from the cache now.
        reason: One sentence.
        differences: For a miss, against the nearest stored entry, what differs, first
            the most telling (``"llm_string: temperature 0.7 != 0.2"``,
            ``"prompt: message 3 (human) content differs at char 41"``,
            ``"expired 12 s ago"``, ``"stored in scope 'tenant-b'"``).
    """

    hit: bool
    reason: str
    differences: tuple[str, ...] = ()

    def __str__(self) -> str:
        lines = [self.reason, *(f"  - {d}" for d in self.differences)]
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A stored entry as ``explain`` compares it.

    Attributes:
        prompt: Its canonical prompt (what its key was made of).
        llm_string: Its llm_string.
        scope: Its scope, or ``None``.
        expires_at: Its expiry (on the cache's clock), or ``None``.
        created_at: Its write time (on the cache's clock), or ``None`` if unknown.
    """

    prompt: str
    llm_string: str
    scope: str | None
    expires_at: float | None = None
    created_at: float | None = None


def explain(
    prompt: str,
    llm_string: str,
    scope: str | None,
    candidates: Iterable[Candidate],
    *,
    now: float,
    max_age: float | None = None,
    expired_at: float | None = None,
) -> Explanation:
    """Explain a miss of ``(prompt, llm_string)`` in ``scope`` against stored candidates.

    ``prompt`` is the canonical prompt. The caller has already established that the
    lookup misses (or why it would hit); this finds the nearest candidate and names the
    differences. ``expired_at``: when this request's own entry expired, if the cache
    remembers it (:class:`gencache._expiries.Expiries`) and no longer holds it.
    """
    if expired_at is not None:
        return _expired(now, expired_at)
    best: tuple[int, Candidate] | None = None
    for scanned, candidate in enumerate(candidates):
        if scanned >= MAX_SCANNED:
            break
        score = _distance(prompt, llm_string, scope, candidate)
        if best is None or score < best[0]:
            best = (score, candidate)
            if score == 0:
                break
    if best is None:
        return Explanation(False, "Miss: the cache holds no entry.", ())
    nearest = best[1]
    if nearest.prompt == prompt and nearest.llm_string == llm_string:
        return _same_request(nearest, scope, now, max_age)
    found: list[str] = []
    found.extend(describe_differences(prompt, llm_string, nearest.prompt, nearest.llm_string))
    if nearest.scope != scope:
        found.append(_scopes(nearest.scope, scope))
    return Explanation(False, "Miss: no entry for this request; the nearest differs.", tuple(found))


def _scopes(stored: str | None, asked: str | None) -> str:
    return f"stored in {_scope_name(stored)}, looked up in {_scope_name(asked)}"


def _expired_ago(now: float, expired_at: float) -> str:
    return f"expired {_seconds(now - expired_at)} ago"


def _expired(now: float, expired_at: float) -> Explanation:
    return Explanation(
        False, "Miss: the entry for this request expired.", (_expired_ago(now, expired_at),)
    )


def _same_request(
    stored: Candidate, scope: str | None, now: float, max_age: float | None
) -> Explanation:
    """Why the very request that is stored (maybe in another scope) does not answer."""
    found: list[str] = []
    if stored.scope != scope:
        found.append(_scopes(stored.scope, scope))
    if stored.expires_at is not None and stored.expires_at <= now:
        if not found:  # still stored (SQLite, until a purge): said as when it is gone
            return _expired(now, stored.expires_at)
        found.append(_expired_ago(now, stored.expires_at))
    if max_age is not None and stored.created_at is not None and now - stored.created_at >= max_age:
        age = _seconds(now - stored.created_at)
        found.append(f"written {age} ago, older than max_age={max_age:g} s")
    if not found:
        found.append("the same request is stored, but it could not be read")
    return Explanation(False, "Miss: the same request is stored, but not usable.", tuple(found))


def explain_store(
    store: Store,
    key: Key,
    keyed: Callable[[str], str],
    *,
    now: float,
    max_age: float | None,
    expiries: Expiries,
) -> Explanation:
    """Explain a lookup of ``key`` in ``store``, without side effects.

    ``keyed`` turns a stored prompt into what its key was made of (the canonical form).
    Reads the entry under the key (``peek``), then, if it is gone, the expiry this cache
    remembers for it (``expiries``), then scans at most :data:`MAX_SCANNED` entries
    (``entries(expired=True)``).
    """
    record = store.peek(key)
    if record is not None:
        opened = open_record(key, record, now, max_age)
        if opened.value is not None:
            return Explanation(True, "Hit: this request is stored.")
        if opened.damage is not None and opened.meta.get("key") is None:
            return Explanation(False, "Miss: the stored entry is damaged.", (opened.damage,))
    elif (expired_at := expiries.expired(key.digest, now)) is not None:
        return _expired(now, expired_at)
    candidates = (
        Candidate(keyed(e.prompt), e.llm_string, e.scope, e.expires_at, e.created_at)
        for e in store.entries(expired=True)
    )
    return explain(
        keyed(key.prompt), key.llm_string, key.scope, candidates, now=now, max_age=max_age
    )


def describe_differences(
    prompt: str, llm_string: str, stored_prompt: str, stored_llm_string: str
) -> list[str]:
    """Name the fields in which a request differs from a stored one (request first)."""
    found: list[str] = []
    if llm_string != stored_llm_string:
        found.extend(_llm_string_differences(llm_string, stored_llm_string))
    if prompt != stored_prompt:
        found.extend(_prompt_differences(prompt, stored_prompt))
    return found


def _scope_name(scope: str | None) -> str:
    return "no scope" if scope is None else f"scope {scope!r}"


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value >= 1 else f"{value:.3f} s"


def _distance(prompt: str, llm_string: str, scope: str | None, c: Candidate) -> int:
    """A rough distance: same request first, then same model, then the closest prompt."""
    score = 0
    if c.llm_string != llm_string:
        score += 4 << 40
    if c.prompt != prompt:
        score += 2 << 40
        score += _mismatch_cost(prompt, c.prompt)
    if c.scope != scope:
        score += 1 << 40
    return score


def _mismatch_cost(a: str, b: str) -> int:
    """Smaller when the two share a longer prefix and have closer lengths."""
    prefix = common_prefix(a, b)
    return (max(len(a), len(b)) - prefix) + abs(len(a) - len(b))


def common_prefix(a: str, b: str) -> int:
    """Return the length of the longest common prefix of ``a`` and ``b``."""
    n = min(len(a), len(b))
    lo, hi = 0, n  # binary search on slices: O(n log n) in C, no Python loop per char
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


# -- llm_string ------------------------------------------------------------------------------


def _llm_params(llm_string: str) -> dict[str, Any] | None:
    """The parameters an llm_string names, flattened, or ``None`` if it is not LangChain's.

    LangChain writes ``json.dumps(serialized model, sort_keys=True) + "---" +
    str(sorted(call params))`` for serializable models, else ``str(sorted(params))``.
    The params part is a Python literal: read with ``ast.literal_eval``, which evaluates
    literals only (no names, no calls).
    """
    if len(llm_string) > MAX_FIELD:
        return None
    head, sep, tail = llm_string.rpartition("---")
    params: dict[str, Any] = {}
    if sep:
        try:
            model = json.loads(head)
        except (ValueError, RecursionError):
            return None
        if isinstance(model, dict):
            kwargs = model.get("kwargs")
            if isinstance(kwargs, dict):
                params.update(kwargs)
            if isinstance(model.get("id"), list) and model["id"]:
                params.setdefault("class", model["id"][-1])
    else:
        tail = llm_string
    try:
        pairs = ast.literal_eval(tail)
    except (ValueError, SyntaxError, RecursionError, MemoryError, TypeError):
        return params or None
    if isinstance(pairs, list) and all(isinstance(p, tuple) and len(p) == 2 for p in pairs):
        params.update({str(k): v for k, v in pairs})
    return params or None


def _llm_string_differences(asked: str, stored: str) -> list[str]:
    a, s = _llm_params(asked), _llm_params(stored)
    if a is None or s is None:
        at = common_prefix(asked, stored)
        return [f"llm_string: differs at char {at}"]
    found = []
    for name in sorted(a.keys() | s.keys(), key=_param_order):
        if name not in s:
            found.append(f"llm_string: {name} {_show(a[name])} (not set in the stored entry)")
        elif name not in a:
            found.append(f"llm_string: {name} not set (stored: {_show(s[name])})")
        elif a[name] != s[name]:
            found.append(f"llm_string: {name} {_show(a[name])} != {_show(s[name])}")
    return found or ["llm_string: differs in formatting only"]


_FIRST = ("model", "model_name", "model_id", "class", "temperature", "tools", "stop")


def _param_order(name: str) -> tuple[int, str]:
    return (_FIRST.index(name) if name in _FIRST else len(_FIRST), name)


# -- prompt ----------------------------------------------------------------------------------


def _messages(prompt: str) -> list[dict[str, Any]] | None:
    """The messages of a LangChain chat prompt (``dumps(messages)``), or ``None``."""
    if len(prompt) > MAX_FIELD or not prompt.startswith("["):
        return None
    try:
        data = json.loads(prompt)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, list) or not all(
        isinstance(m, dict) and isinstance(m.get("kwargs"), dict) for m in data
    ):
        return None
    return [m["kwargs"] for m in data]


def _role(message: dict[str, Any]) -> str:
    role = message.get("type")
    return role if isinstance(role, str) else "?"


def _prompt_differences(asked: str, stored: str) -> list[str]:
    a, s = _messages(asked), _messages(stored)
    if a is None or s is None:
        return [f"prompt: differs at char {common_prefix(asked, stored)}"]
    found = []
    for i, (am, sm) in enumerate(zip(a, s, strict=False), 1):
        if _role(am) != _role(sm):
            found.append(f"prompt: message {i} is {_role(am)}, stored {_role(sm)}")
            continue
        for field in sorted(am.keys() | sm.keys(), key=lambda f: (f != "content", f)):
            if field == "type" or am.get(field) == sm.get(field):
                continue
            what = f"prompt: message {i} ({_role(am)}) {field}"
            av, sv = am.get(field), sm.get(field)
            if isinstance(av, str) and isinstance(sv, str):
                found.append(f"{what} differs at char {common_prefix(av, sv)}")
            elif field not in sm:
                found.append(f"{what} is set, not in the stored entry")
            elif field not in am:
                found.append(f"{what} is not set, the stored entry has one")
            else:
                text_a = json.dumps(av, sort_keys=True, default=str)
                text_s = json.dumps(sv, sort_keys=True, default=str)
                found.append(f"{what} differs at char {common_prefix(text_a, text_s)}")
    extra = len(a) - len(s)
    if extra:
        more = "more" if extra > 0 else "fewer"
        found.append(f"prompt: {abs(extra)} message{'s' if abs(extra) > 1 else ''} {more}")
    return found or ["prompt: differs in formatting only"]
