"""``poetrynow demo``, ``poetrynow serve`` and ``poetrynow poems``."""

from __future__ import annotations

import argparse
import sys

from poetrynow import validate
from poetrynow.cli.common import (
    OK,
    USAGE,
    Interrupted,
    close_trace,
    command_parser,
    error,
    interrupt_on_signals,
    open_trace,
    poems_line,
    port_arg,
    seconds,
    stopped,
    timeline_problem,
)
from poetrynow.cli.faults import add_arguments as add_faults_arguments
from poetrynow.cli.faults import run as run_faults
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
        help="draw every engine's run, a panel each, to FILE (.png or .svg; default: demo-timeline.png)",
    )
    demo.add_argument(
        "--no-timeline",
        action="store_true",
        help="write no picture file (the text timeline is still printed)",
    )
    demo.add_argument(
        "--trace",
        metavar="FILE",
        default=None,
        help="write every engine's run to FILE in the Trace Event Format, a process each "
        "(open it in https://ui.perfetto.dev or chrome://tracing)",
    )
    demo.add_argument(
        "--transform-cost",
        type=seconds,
        default=None,
        metavar="S",
        help="instead, Part 20's warning measured: four clients at once against a transform server "
        "whose every transform costs S seconds (a blocking wait, or CPU work), done in the reactor's "
        "thread, a thread pool or a process pool (the twisted engine; --delay, --engines and "
        "--progress do not apply)",
    )
    demo.add_argument(
        "--progress",
        action="store_true",
        help="a live table of the tasks while each engine runs (on a terminal), instead of a line each",
    )
    demo.add_argument(
        "--reads",
        action="store_true",
        help="every read's line, as get-poetry prints them (Task 1: got 30 bytes of poetry from ...), "
        "instead of one progress line per engine",
    )
    serve = sub.add_parser(
        "serve",
        help="Part 2's three slow servers in one command (and the transform server and proxy)",
        description="Start Part 2's three slow servers, each announced on its own line, and, if "
        "asked, the transform server and a proxy in front of the first; Ctrl-C stops them all.",
    )
    serve.add_argument(
        "--ports",
        type=port_list,
        default=[10000, 10001, 10002],
        help="comma list (default: 10000,10001,10002)",
    )
    serve.add_argument(
        "--poems",
        type=name_list,
        default=["lighthouse", "kettle", "relay"],
        help="comma list of poems, one per port (default: lighthouse,kettle,relay)",
    )
    serve.add_argument(
        "--num-bytes",
        type=count_list,
        default=[30, 10, 10],
        help="comma list of bytes per chunk, one per port (default: 30,10,10)",
    )
    serve.add_argument(
        "--delay", type=seconds, default=0.1, help="the servers' seconds between chunks (default: 0.1)"
    )
    serve.add_argument(
        "--with-transform",
        type=port_arg,
        nargs="?",
        const=10003,
        default=None,
        metavar="PORT",
        help="also the transform server (default port: 10003)",
    )
    serve.add_argument(
        "--with-proxy",
        type=port_arg,
        nargs="?",
        const=10004,
        default=None,
        metavar="PORT",
        help="also a proxy in front of the first slow server (default port: 10004)",
    )
    serve.add_argument("--quiet", action="store_true", help="print only the listening lines")
    sub.add_parser("poems", help="list the bundled poems")
    faults = sub.add_parser(
        "faults",
        help="toxiproxy's HTTP API: relays in front of any TCP server, with faults changed at run time",
        description="Serve toxiproxy's HTTP API; each proxy it creates is a relay in front of a TCP "
        "server, with toxics added, changed and removed while connections are open.",
    )
    add_faults_arguments(faults)
    lab = sub.add_parser(
        "lab",
        help="the loop, live, in a browser page: choose engines and servers, run, watch the lanes fill",
        description="Serve the lab's page on 127.0.0.1 (its address, with a token, is the first line) "
        "and open it in your browser; each run is real get-poetry runs against real slow servers.",
    )
    lab.add_argument("--port", type=port_arg, default=0, help="port to listen on (default: 0, a free port)")
    lab.add_argument("--no-browser", action="store_true", help="print the address, open no browser")
    return p


def _list(text: str, convert) -> list:
    try:
        return [convert(item.strip()) for item in text.split(",") if item.strip()]
    except ValueError as problem:
        raise argparse.ArgumentTypeError(str(problem)) from None


def port_list(text: str) -> list[int]:
    return _list(text, validate.port)


def count_list(text: str) -> list[int]:
    return _list(text, validate.positive_int)


def name_list(text: str) -> list[str]:
    return _list(text, str)


def serve_all(p: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``poetrynow serve``: the article's set-up in one process, one reactor."""
    from poetrynow.address import Address
    from poetrynow.cli.common import raise_fd_limit
    from poetrynow.cli.serving import serve
    from poetrynow.servers.common.listen import Where
    from poetrynow.servers.deploy import poetry_proxy, slow_poetry, transformed_poetry

    if not len(args.ports) == len(args.poems) == len(args.num_bytes):
        p.error(
            f"give as many --poems and --num-bytes as --ports ({len(args.ports)} ports, "
            f"{len(args.poems)} poems, {len(args.num_bytes)} chunk sizes)"
        )
    raise_fd_limit()
    log = not args.quiet
    trees = [
        slow_poetry(poem, num_bytes, args.delay, Where(port, "localhost"), log_clients=log)
        for port, poem, num_bytes in zip(args.ports, args.poems, args.num_bytes, strict=True)
    ]
    if args.with_transform is not None:
        trees.append(transformed_poetry(Where(args.with_transform, "localhost"), log_clients=log))
    if args.with_proxy is not None:
        upstream = Address("127.0.0.1", args.ports[0])
        first = trees[0].listener if args.ports[0] == 0 else None  # (its port, once it listens)
        trees.append(
            poetry_proxy(upstream, Where(args.with_proxy, "localhost"), log_clients=log, upstream_of=first)
        )
    return serve("poetrynow serve", *trees, quiet=args.quiet)


def list_poems() -> int:
    rows = [(poem.name, str(len(poem.data)), str(poem.lines), poem.title) for poem in bundled_poems()]
    print(format_table(("name", "bytes", "lines", "title"), rows, right={1, 2}))
    return OK


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.command == "poems":
        return list_poems()
    if args.command == "serve":
        return serve_all(p, args)
    if args.command == "faults":
        return run_faults(args)
    if args.command == "lab":
        from poetrynow.cli.lab import run_lab

        return run_lab(args.port, browser=not args.no_browser)
    if args.command == "demo":
        from poetrynow.demo import DEFAULT_PICTURE, run_demo
        from poetrynow.demo_servers import ServerDidNotStart
        from poetrynow.timeline import have_matplotlib

        if args.no_timeline and args.timeline:
            return error(PROG, "give --timeline FILE or --no-timeline, not both", USAGE)
        if problem := timeline_problem(args.timeline):
            return error(PROG, problem, USAGE)
        from poetrynow.costdemo import DEFAULT_PICTURE as COST_PICTURE
        from poetrynow.costdemo import run_cost_demo

        picture = args.timeline
        if picture is None and not args.no_timeline and have_matplotlib():
            picture = DEFAULT_PICTURE if args.transform_cost is None else COST_PICTURE
        hint = picture is None and not args.no_timeline
        trace, status = open_trace(PROG, args.trace)
        if status is not None:
            return status
        interrupt_on_signals()
        try:
            if args.transform_cost is not None:
                status = run_cost_demo(args.transform_cost, timeline=picture, picture_hint=hint, trace=trace)
            else:
                status = run_demo(
                    delay=args.delay,
                    engines=args.engines,
                    timeline=picture,
                    progress=args.progress,
                    picture_hint=hint,
                    trace=trace,
                    reads=args.reads,
                )
        except Interrupted as stop:
            close_trace(PROG, trace, args.trace)
            during = getattr(stop, "engine", None)
            what = f"during --engine {during}, {poems_line(stop)}" if during else "while starting its servers"
            return stopped(PROG, stop, f"{what}; its servers are stopped")
        except ServerDidNotStart as problem:
            close_trace(PROG, trace, args.trace)
            return error(PROG, str(problem))
        finally:
            if trace is not None and not trace.closed:  # anything else: the file still ends its JSON
                trace.close()
        if trace is not None:
            if (failed := close_trace(PROG, trace, args.trace)) is not None:
                return failed
            print(f"\nThe trace is in {args.trace}: open it in https://ui.perfetto.dev.", flush=True)
        return status
    p.print_help(sys.stderr)
    return USAGE


if __name__ == "__main__":
    sys.exit(main())
