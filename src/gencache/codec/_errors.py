"""The codec's exceptions: the public :class:`CodecError` and the slow-path signal."""

from __future__ import annotations

__all__ = ["CodecError", "NotPlain"]


class CodecError(ValueError):
    """The generations cannot be encoded, or the payload cannot be decoded."""


# Shown as gencache.codec.CodecError in tracebacks: the module users import it from.
CodecError.__module__ = "gencache.codec"


class NotPlain(Exception):  # noqa: N818  (a signal, not an error)
    """A value is not plain JSON data: encode takes the converting slow path."""
