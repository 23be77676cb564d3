"""``poetrynow demo`` and ``poetrynow poems``."""

from __future__ import annotations

import argparse
import sys

from poetrynow.cli.common import (
    OK,
    USAGE,
    Interrupted,
    command_parser,
    error,
    interrupt_on_signals,
    poems_line,
    seconds,
    stopped,
    timeline_problem,
)
from poetrynow.clients import ENGINES
from poetrynow.poems import bundled_poems
from poetrynow.tables import format_table

PROG = "poetrynow"


def engine_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if names == ["all"]:
        return list(ENGINES)
    unknown = [name for name in names if name not in ENGINES]
    if unknown or not names:
        named = ", ".join(map(repr, unknown)) or repr(text)
        raise argparse.ArgumentTypeError(f"unknown engine {named}; choose from {', '.join(ENGINES)} or all")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise argparse.ArgumentTypeError(f"engine {', '.join(map(repr, twice))} named twice; each runs once")
    return names


def parser() -> argparse.ArgumentParser:
    p = command_parser(prog=PROG, description="Get Poetry Now!")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="run Part 2's experiment on the bundled poems",
        description="Start three slow poetry servers, download from them "
        "with each engine in turn, and compare the times.",
    )
    demo.add_argument(
        "--delay", type=seconds, default=0.1, help="the servers' seconds between chunks (default: 0.1)"
    )
    demo.add_argument(
        "--engines",
        type=engine_list,
        default=["blocking", "select"],
        help="comma list of engines, or all (default: blocking,select)",
    )
    demo.add_argument(
        "--timeline",
        metavar="FILE",
        default=None,
        help="draw every engine's run, a panel each, to FILE (.png or .svg)",
    )
    demo.add_argument(
        "--progress",
        action="store_true",
        help="a live table of the tasks while each engine runs (on a terminal)",
    )
    sub.add_parser("poems", help="list the bundled poems")
    return p


def list_poems() -> int:
    rows = [(poem.name, str(len(poem.data)), str(poem.lines), poem.title) for poem in bundled_poems()]
    print(format_table(("name", "bytes", "lines", "title"), rows, right={1, 2}))
    return OK


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.command == "poems":
        return list_poems()
    if args.command == "demo":
        from poetrynow.demo import run_demo

        if problem := timeline_problem(args.timeline):
            return error(PROG, problem, USAGE)
        interrupt_on_signals()
        try:
            return run_demo(
                delay=args.delay, engines=args.engines, timeline=args.timeline, progress=args.progress
            )
        except Interrupted as stop:
            during = getattr(stop, "engine", None)
            what = f"during --engine {during}, {poems_line(stop)}" if during else "while starting its servers"
            return stopped(PROG, stop, f"{what}; its servers are stopped")
    p.print_help(sys.stderr)
    return USAGE


if __name__ == "__main__":
    sys.exit(main())
