"""The ``gencache`` command: a demo, and tools to inspect persistent caches.

Examples::

    gencache demo                                  # chat model answered from an in-memory cache
    gencache demo --backend sqlite                 # twice: the 2nd run hits the 1st's cache
    gencache stats ~/.cache/gencache/llm_cache.sqlite3
    gencache ls redis://localhost:6379/0 --limit 20
    gencache show cache.sqlite3 3fa2c1
    gencache explain cache.sqlite3 --prompt-file p.txt --llm-string-file l.txt
    gencache export cache.sqlite3 -o backup.jsonl
    gencache import other.sqlite3 backup.jsonl
    gencache prune cache.sqlite3
    gencache clear redis://localhost:6379/0 --namespace myapp --yes

Inspection (``stats``, ``ls``, ``show``, ``explain``, ``export``) opens a SQLite file
read-only: it needs no write access to the file or its directory, and never creates one.
The package: this module (arguments), ``_commands`` (one function per command),
``_targets`` (SQLite path or Redis URL) and ``_render`` (text for people).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from gencache.cli._commands import (
    cmd_clear,
    cmd_demo,
    cmd_explain,
    cmd_export,
    cmd_import,
    cmd_ls,
    cmd_prune,
    cmd_show,
    cmd_stats,
)
from gencache.cli._targets import CLIError
from gencache.errors import GenCacheError

__all__ = ["main"]

_EXIT_ERROR = 1


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        msg = f"not a number: {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if not value >= 0:
        msg = f"must be >= 0: {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gencache",
        description="Caches for LangChain LLM and chat-model calls.",
        epilog=(
            "TARGET is a SQLite file (e.g. ~/.cache/gencache/llm_cache.sqlite3) or a Redis "
            "URL (redis://, rediss://, unix://). Run 'gencache COMMAND --help' for examples."
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="ask a chat model the same prompts twice through a cache; show what it saved",
        description=(
            "Ask a LangChain chat model five prompts twice through a gencache cache and show "
            "which answers came from the model and which from the cache, what each pass "
            "cost, and the cache's statistics. The model is LangChain's fake chat model "
            "with a simulated provider latency: no network, no API key."
        ),
        epilog=(
            "examples:\n  gencache demo\n  gencache demo --backend sqlite   "
            "# run twice: the second process is answered from the first one's cache\n"
            "  gencache demo --backend redis://localhost:6379/0"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--latency",
        type=_non_negative_float,
        default=0.3,
        help="simulated provider latency per call, in seconds (default: 0.3)",
    )
    demo.add_argument(
        "--backend",
        default="memory",
        help="'memory' (default), 'sqlite' (a demo file in the cache directory), a SQLite "
        "path, or a Redis URL",
    )
    demo.add_argument("--reset", action="store_true", help="clear the demo cache first")

    def target_command(name: str, help_: str, example: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=help_,
            description=help_[0].upper() + help_[1:] + ".",
            epilog=f"example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.add_argument("target", metavar="TARGET", help="a SQLite file or a Redis URL")
        sub.add_argument(
            "--namespace",
            default="gencache",
            help="Redis key namespace (default: gencache); ignored for SQLite",
        )
        return sub

    stats = target_command(
        "stats",
        "show size, age and models of a cache, and what its hits saved",
        "gencache stats cache.sqlite3 --price gpt-4o-mini=0.15,0.60",
    )
    stats.add_argument(
        "--price",
        action="append",
        metavar="MODEL=IN,OUT",
        help="price per million input and output tokens, for the money saved (repeatable)",
    )
    ls = target_command(
        "ls", "list entries: key, age, size, model, prompt", "gencache ls cache.sqlite3 --limit 20"
    )
    ls.add_argument("--limit", type=int, default=50, help="at most this many (0: all)")
    ls.add_argument("--model", help="only entries whose model contains this text (any case)")
    explain = target_command(
        "explain",
        "say whether a request would hit, and what differs from the nearest entry",
        "gencache explain cache.sqlite3 --prompt-file prompt.json --llm-string-file llm.txt",
    )
    explain.add_argument("--prompt-file", required=True, help="file holding the prompt")
    explain.add_argument("--llm-string-file", required=True, help="file holding the llm_string")
    explain.add_argument("--scope", help="the scope of gencache.control(scope=...)")
    explain.add_argument(
        "--strip-newline",
        action="store_true",
        help="drop one trailing newline from each file (as editors add)",
    )
    show = target_command(
        "show",
        "show one entry in full, by the start of its key",
        "gencache show cache.sqlite3 3fa2",
    )
    show.add_argument("key", help="the first characters of the entry's key (see 'ls')")
    export = target_command(
        "export", "write every entry as JSON lines", "gencache export cache.sqlite3 -o dump.jsonl"
    )
    export.add_argument("-o", "--output", default="-", help="file to write (default: stdout)")
    imp = target_command(
        "import",
        "read JSON lines written by 'export' into a cache",
        "gencache import new.sqlite3 dump.jsonl",
    )
    imp.add_argument("file", help="the JSON lines file")
    for sub in (export, imp):
        sub.add_argument(
            "--progress",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="show a progress count on stderr (default: on a terminal, for large caches)",
        )
    target_command("prune", "remove expired entries", "gencache prune cache.sqlite3")
    clear = target_command(
        "clear",
        "delete every entry of the cache (only this cache's keys)",
        "gencache clear redis://localhost:6379/0 --namespace myapp --yes",
    )
    clear.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    clear.add_argument("--scope", help="delete only this scope's entries")
    return parser


_COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO], None]] = {
    "demo": cmd_demo,
    "stats": cmd_stats,
    "ls": cmd_ls,
    "show": cmd_show,
    "explain": cmd_explain,
    "export": cmd_export,
    "import": cmd_import,
    "prune": cmd_prune,
    "clear": cmd_clear,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    for stream in (sys.stdout, sys.stderr):  # a cache may hold any str: never crash printing it
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    try:
        _COMMANDS[args.command](args, sys.stdout)
    except BrokenPipeError:  # e.g. `gencache ls ... | head`: stop quietly, as git does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except (CLIError, GenCacheError, OSError) as exc:
        sys.stderr.write(f"gencache {args.command}: error: {exc}\n")
        return _EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
