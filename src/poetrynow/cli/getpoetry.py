"""``get-poetry ADDRESS...``: download one poem per address with the chosen engine."""

from __future__ import annotations

import argparse
import logging
import sys

from poetrynow.cli.common import (
    FAILED,
    USAGE,
    Interrupted,
    address_arg,
    close_trace,
    command_parser,
    error,
    interrupt_on_signals,
    non_negative_int,
    open_trace,
    poems_line,
    positive_int,
    raise_fd_limit,
    seconds,
    stopped,
    timeline_problem,
)
from poetrynow.clients import (
    ENDPOINTS,
    ENGINES,
    ORDERED,
    SUPERVISE,
    XFORM,
    EngineOptions,
    engines_taking,
    unexpected,
)
from poetrynow.clients.errors import DEFAULT_MAX_BYTES
from poetrynow.events import describe_error
from poetrynow.session import fetch

PROG = "get-poetry"
MAX_BYTES_HELP = (
    f"the largest poem taken; a server that sends more fails its task (default: {DEFAULT_MAX_BYTES})"
)


def parser() -> argparse.ArgumentParser:
    p = command_parser(
        prog=PROG,
        description="Download a poem from each poetry server, the way the chosen "
        "model of concurrency would, and report as the articles do.",
        epilog="engines:\n" + "\n".join(f"  {name:<9} {info.model}" for name, info in ENGINES.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "addresses",
        nargs="+",
        type=address_arg,
        metavar="ADDRESS",
        help="[host:]port of a poetry server; host defaults to 127.0.0.1",
    )
    p.add_argument(
        "--engine",
        choices=list(ENGINES),
        default="blocking",
        help="model of concurrency (default: blocking)",
    )
    p.add_argument(
        "--json", action="store_true", help="print one JSON object per event instead of the text lines"
    )
    p.add_argument(
        "--timeout",
        type=seconds,
        default=None,
        help="give up on a server that sends nothing for this many seconds",
    )
    p.add_argument(
        "--max-bytes", type=positive_int, default=DEFAULT_MAX_BYTES, metavar="N", help=MAX_BYTES_HELP
    )
    p.add_argument(
        "--expect-bytes",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="a poem of any other length fails its task: to test against a server that cuts poems short",
    )
    p.add_argument(
        "--xform",
        type=address_arg,
        metavar="ADDRESS",
        default=None,
        help="[host:]port of a transform server to send each poem through",
    )
    p.add_argument(
        "--transform",
        default=None,
        metavar="NAME",
        help="the transform to ask for with --xform (default: cummingsify)",
    )
    p.add_argument(
        "--no-poems",
        dest="print_poems",
        action="store_false",
        help="with the twisted, actors and lazy engines, do not print the poems themselves",
    )
    p.add_argument(
        "--ordered",
        action="store_true",
        help="with --engine actors, print the poems in command-line order, not as they came",
    )
    p.add_argument(
        "--supervise",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="with --engine actors, restart a crashed process up to N times (default: 0)",
    )
    p.add_argument(
        "--timeline",
        metavar="FILE",
        default=None,
        help="draw the run to FILE (.png or .svg; needs poetrynow[plot]), or, with -, as text after it",
    )
    p.add_argument(
        "--trace",
        metavar="FILE",
        default=None,
        help="write the run to FILE in the Trace Event Format: its reads, its loop's waits, its "
        "threads (open it in https://ui.perfetto.dev or chrome://tracing)",
    )
    p.add_argument(
        "--progress",
        action="store_true",
        help="a live table of the tasks while they run (on a terminal; needs poetrynow[progress])",
    )
    p.add_argument(
        "--debug",
        action="store_true",
        help="on stderr, the traceback of any error that is not the network's (a bug)",
    )
    return p


def show_debug_log() -> None:
    """``--debug``: poetrynow's debug log (the tracebacks of engine bugs) on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logger = logging.getLogger("poetrynow")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)


def settings_problem(args: argparse.Namespace) -> str | None:
    """An option the chosen engine does not honour, in one line; or None."""
    takes = ENGINES[args.engine].takes
    if args.xform and XFORM not in takes:
        return f"--xform works with --engine {', '.join(engines_taking(XFORM))}"
    endpoints = [str(a) for a in [*args.addresses, args.xform] if a is not None and not a.tcp]
    if endpoints and ENDPOINTS not in takes:
        engines = ", ".join(engines_taking(ENDPOINTS))
        return f"{endpoints[0]} is not a TCP address: endpoints work with --engine {engines}"
    if args.transform is not None and not args.xform:
        return "--transform works with --xform (the transform server's address)"
    for setting, given in ((ORDERED, args.ordered), (SUPERVISE, args.supervise)):
        if given and setting not in takes:
            return f"--{setting} works with --engine {', '.join(engines_taking(setting))}"
    return None


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if problem := settings_problem(args):
        p.error(problem)
    if args.debug:
        show_debug_log()
    if problem := timeline_problem(args.timeline):
        return error(PROG, problem, USAGE)
    trace, status = open_trace(PROG, args.trace)
    if status is not None:
        return status
    raise_fd_limit()
    interrupt_on_signals()
    options = EngineOptions(
        timeout=args.timeout or None,
        xform=args.xform,
        transform=args.transform or "cummingsify",
        ordered=args.ordered,
        supervise=args.supervise,
        max_bytes=args.max_bytes,
        expect_bytes=args.expect_bytes,
    )
    try:
        summary = fetch(
            args.engine,
            args.addresses,
            options,
            as_json=args.json,
            print_poems=args.print_poems,
            progress=args.progress,
            keep_events=bool(args.timeline),
            trace=trace,
        )
    except Interrupted as stop:
        close_trace(PROG, trace, args.trace)  # valid JSON however the run ended
        return stopped(PROG, stop, poems_line(stop))
    except Exception as bug:  # a bug outside every task (the engine's start-up): the run, not one task
        close_trace(PROG, trace, args.trace)
        unexpected(bug, ())
        return error(PROG, f"the {args.engine} engine failed: {describe_error(bug)}", FAILED)
    finally:
        if trace is not None and not trace.closed:  # anything else: the file still ends its JSON
            trace.close()
    if (status := close_trace(PROG, trace, args.trace)) is not None:
        return status
    if args.timeline:
        from poetrynow.timeline import (
            Panel,
            TimelineError,
            draw,
            rows_of,
            terminal_width,
            text_timeline,
            wants_colour,
        )

        panels = [Panel(f"get-poetry --engine {args.engine}", rows_of(summary.events, summary.began))]
        if args.timeline == "-":
            print(text_timeline(panels, terminal_width(), wants_colour(sys.stdout)), flush=True)
            return summary.exit_status
        try:
            draw(panels, args.timeline)
        except TimelineError as problem:
            return error(PROG, str(problem), FAILED)
    return summary.exit_status


if __name__ == "__main__":
    sys.exit(main())
