"""The ``gencache`` command.

Examples::

    gencache demo                      # a chat model answered from an in-memory cache
    gencache demo --latency 0.5        # slower simulated provider
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gencache._demo import run_demo
from gencache.memory import InMemoryCache

__all__ = ["main"]


def _positive_float(text: str) -> float:
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
        epilog="Run 'gencache COMMAND --help' for a command's options and examples.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="run a chat model twice through the cache and show cold vs warm time",
        description=(
            "Ask a LangChain chat model five prompts twice through a gencache cache and show "
            "cold vs warm time, hit rate and statistics. The model is LangChain's fake chat "
            "model with a simulated provider latency: no network, no API key."
        ),
        epilog="example: gencache demo --latency 0.5",
    )
    demo.add_argument(
        "--latency",
        type=_positive_float,
        default=0.3,
        help="simulated provider latency per call, in seconds (default: 0.3)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        cache = InMemoryCache(maxsize=1_000)
        run_demo(cache, latency=args.latency, out=sys.stdout, label="gencache.InMemoryCache")
    return 0


if __name__ == "__main__":
    sys.exit(main())
