"""Text for people: model names, chat prompts as ``role: content``, sizes and ages.

Everything here accepts what a cache may hold (lone surrogates, NUL bytes, huge strings,
damaged JSON) and returns printable text; nothing raises on odd input.
"""

from __future__ import annotations

import json
import re
from typing import Any

from gencache._accounting import model_named

__all__ = ["age", "messages_text", "model_of", "preview", "printable", "size"]

_MAX_PARSE = 5_000_000  # characters of a prompt parsed as JSON at most, for display
_DATA_URL = re.compile(r"data:([\w.+/-]+);base64,")


def printable(text: str) -> str:
    """``text`` with lone surrogates escaped (``\\udc80``), so it can always be written."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def model_of(llm_string: str) -> str:
    """The model named in an llm_string, or its start."""
    return model_named(llm_string) or preview(llm_string, 24)


def preview(text: str, width: int) -> str:
    """One line of at most ``width`` characters."""
    flat = " ".join(printable(text[: width * 4]).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def age(seconds: float) -> str:
    """``0.25s``, ``3.14s``, ``42s``, ``3.5m``, ``2.0h``, ``1.5d``."""
    seconds = max(0.0, seconds)
    for unit, length in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= length:
            return f"{seconds / length:.1f}{unit}"
    if 0 < seconds < 10:
        return f"{seconds:.2f}s"
    return f"{seconds:.0f}s"


def size(n: float) -> str:
    """``512 B``, ``14.0 KB``, ``3.2 MB``."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


def _base64_size(data: str) -> int:
    return len(data) * 3 // 4


def _block(block: Any) -> str:
    """One content block: text as it is, anything binary as ``[image/png, 14.0 KB]``."""
    if isinstance(block, str):
        return block
    if not isinstance(block, dict):
        return f"[{type(block).__name__}]"
    kind = block.get("type")
    if kind == "text" and isinstance(block.get("text"), str):
        return str(block["text"])
    url = block.get("image_url")
    if isinstance(url, dict):
        url = url.get("url")
    if isinstance(url, str):
        found = _DATA_URL.match(url)
        if found:
            return f"[{found.group(1)}, {size(_base64_size(url[found.end() :]))}]"
        return f"[image {preview(url, 60)}]"
    data = block.get("data") or block.get("base64")
    if isinstance(data, str):
        mime = block.get("mime_type") or block.get("media_type") or kind or "binary"
        return f"[{mime}, {size(_base64_size(data))}]"
    source = block.get("source")
    if isinstance(source, dict) and isinstance(source.get("data"), str):
        mime = source.get("media_type") or kind or "binary"
        return f"[{mime}, {size(_base64_size(source['data']))}]"
    if isinstance(block.get("url"), str):
        return f"[{kind or 'file'} {preview(block['url'], 60)}]"
    return f"[{kind or 'block'}]"


def content_text(content: Any) -> str:
    """A message content (a str, or a list of blocks) as text."""
    if isinstance(content, str):
        return printable(content)
    if isinstance(content, list):
        return printable(" ".join(_block(b) for b in content))
    return printable(json.dumps(content, default=str)[:1_000])


def messages_text(prompt: str) -> list[str] | None:
    """A chat prompt (LangChain's ``dumps(messages)``) as ``role: content`` lines.

    ``None`` when ``prompt`` is not such a list: the caller shows it as it is.
    """
    if not prompt.startswith("[{") or len(prompt) > _MAX_PARSE:
        return None
    try:
        messages = json.loads(prompt)
    except (ValueError, RecursionError):
        return None
    if not isinstance(messages, list):
        return None
    lines = []
    for message in messages:
        kwargs = message.get("kwargs") if isinstance(message, dict) else None
        if not isinstance(kwargs, dict):
            return None
        role = kwargs.get("type") if isinstance(kwargs.get("type"), str) else "?"
        line = f"{role}: {content_text(kwargs.get('content', ''))}"
        calls = kwargs.get("tool_calls")
        if calls:
            line += f"  [tool calls: {printable(json.dumps(calls, default=str))[:500]}]"
        lines.append(line)
    return lines
