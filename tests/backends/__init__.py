"""The backends every contract test runs against.

Each backend module here exposes ``BACKEND``: how to build an empty cache and which
optional constructor arguments it takes. Adding a backend is adding a module and a line
to ``_MODULES``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from gencache import GenCache

Factory = Callable[..., GenCache]


@dataclass(frozen=True)
class Backend:
    """How to build an empty cache of one backend, and which options it takes."""

    name: str
    make: Factory
    features: frozenset[str] = field(default_factory=frozenset)
    #: Another cache over the same storage as the one given (what a second process
    #: opens), for the backends that share it ("shared" in ``features``).
    reopen: Callable[[GenCache], GenCache] | None = None
    #: Overwrite the stored value of ``(prompt, llm_string)`` with bytes that are not a
    #: value, as another program could ("damage" in ``features``).
    damage: Callable[[GenCache, str, str], None] | None = None


_MODULES = ["memory", "sqlite", "redis"]


def _load() -> list[Backend]:
    found = []
    for name in _MODULES:
        try:
            module = importlib.import_module(f"tests.backends.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"tests.backends.{name}":
                raise
            continue
        found.append(module.BACKEND)
    return found


BACKENDS: list[Backend] = _load()
