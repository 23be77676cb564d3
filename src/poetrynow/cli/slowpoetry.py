"""``slowpoetry POEM``: Part 2's slow poetry server."""

from __future__ import annotations

import argparse
import sys

from poetrynow.cli.common import (
    FAILED,
    OK,
    USAGE,
    Interrupted,
    add_listen_options,
    add_plain_option,
    command_parser,
    error,
    fraction,
    interrupt_on_signals,
    non_negative_int,
    positive_int,
    rate,
    seconds,
    stopped,
    where,
)
from poetrynow.faults import Faults
from poetrynow.poems import PoemNotFound, load_poem
from poetrynow.schedule import PoemSchedule
from poetrynow.servers.common.listen import ListenError, bound_name, closing_listeners, listen
from poetrynow.servers.slow.blocking import serve_forever

PROG = "slowpoetry"


def parser() -> argparse.ArgumentParser:
    p = command_parser(
        prog=PROG,
        description="Serve a poem slowly: NUM_BYTES bytes every DELAY seconds, "
        "one client at a time, then close the connection.",
    )
    p.add_argument("poem", help="a bundled poem's name (see 'poetrynow poems') or a file path")
    p.add_argument("--num-bytes", type=positive_int, default=10, help="bytes per chunk (default: 10)")
    p.add_argument("--delay", type=seconds, default=0.1, help="seconds between chunks (default: 0.1)")
    add_listen_options(p, reuse_port=True)
    p.add_argument(
        "--quiet", action="store_true", help="print only the listening line, not a line per client and chunk"
    )
    p.add_argument(
        "--concurrent",
        action="store_true",
        help="the Twisted edition: serve every client at once, each on its own schedule",
    )
    add_plain_option(
        p,
        help="with --concurrent: the plain Twisted edition (Protocol, Factory, a timer "
        "per client); by default the fast one runs where its start-up check passes",
    )
    p.add_argument(
        "--client-timeout",
        type=seconds,
        default=None,
        metavar="S",
        help="blocking edition: drop a client that reads nothing for S seconds, so it cannot hold up "
        "the others (default: four delays, at least 2 s)",
    )
    add_fault_options(p)
    return p


def add_fault_options(p: argparse.ArgumentParser) -> None:
    """What --concurrent can do wrong, on purpose, for testing clients (docs/faults.md)."""
    faults = p.add_argument_group(
        "faults, with --concurrent",
        "each connection's fate is logged in one line (client 127.0.0.1:5123: reset after 300 bytes)",
    )
    faults.add_argument(
        "--jitter", type=seconds, default=0.0, metavar="S", help="vary each delay by up to S s"
    )
    faults.add_argument(
        "--rate", type=rate, default=None, metavar="BYTES_PER_S", help="pace by bandwidth, not by delay"
    )
    faults.add_argument(
        "--stall-after", type=non_negative_int, default=None, metavar="BYTES", help="then send nothing"
    )
    faults.add_argument(
        "--stall-for",
        type=seconds,
        default=None,
        metavar="S",
        help="...for S s, then go on (default: for ever)",
    )
    faults.add_argument(
        "--close-after",
        type=non_negative_int,
        default=None,
        metavar="BYTES",
        help="then close: a cut-short poem",
    )
    faults.add_argument(
        "--reset-after", type=non_negative_int, default=None, metavar="BYTES", help="then a TCP reset"
    )
    faults.add_argument(
        "--slow-close", type=seconds, default=0.0, metavar="S", help="wait S s before the close"
    )
    faults.add_argument(
        "--accept-delay", type=seconds, default=0.0, metavar="S", help="hold a new connection S s first"
    )
    faults.add_argument(
        "--faulty",
        type=fraction,
        default=1.0,
        metavar="FRACTION",
        help="apply the faults to this share of connections (default: 1, all)",
    )
    faults.add_argument(
        "--seed",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="the same connections fail the same way",
    )


def faults_from(args) -> Faults:
    return Faults(
        jitter=args.jitter,
        stall_after=args.stall_after,
        stall_for=args.stall_for,
        close_after=args.close_after,
        reset_after=args.reset_after,
        slow_close=args.slow_close,
        accept_delay=args.accept_delay,
        faulty=args.faulty,
        seed=args.seed,
    )


def fault_problem(args) -> str | None:
    """Fault options that cannot work as given, in one line; None if they can."""
    faults = faults_from(args)
    if (faults.any or args.rate or args.seed is not None or args.faulty != 1.0) and not args.concurrent:
        return "the fault options and --rate are for --concurrent"
    if args.stall_for is not None and args.stall_after is None:
        return "--stall-for needs --stall-after"
    return None


def client_timeout(args) -> float:
    """``--client-timeout``, or four of the server's delays and at least two seconds."""
    return args.client_timeout if args.client_timeout else max(4 * args.delay, 2.0)


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    place = where(p, args)
    if args.reuse_port and not args.concurrent:
        p.error("--reuse-port is for --concurrent: the blocking server serves one client at a time anyway")
    if args.plain and not args.concurrent:
        p.error("--plain is for --concurrent: the blocking server has one edition")
    if problem := fault_problem(args):
        p.error(problem)
    if args.concurrent:
        return serve_concurrently(args, place)
    try:
        poem = load_poem(args.poem)
    except PoemNotFound as problem:
        return error(PROG, str(problem), USAGE)
    try:
        listeners = listen(place)
    except ListenError as problem:
        return error(PROG, str(problem), FAILED)
    schedule = PoemSchedule(len(poem.data), args.num_bytes, args.delay)
    log = (lambda line: None) if args.quiet else (lambda line: print(line, flush=True))
    interrupt_on_signals()
    try:
        with closing_listeners(listeners):
            # Printed inside the try: a signal that comes as soon as a script reads the line is clean.
            print(f"Serving {args.poem} on {bound_name(listeners[0])}.", flush=True)
            serve_forever(listeners, poem.data, schedule, log, client_timeout(args))
    except Interrupted as stop:
        cut = getattr(stop, "cut_short", None)
        what = (
            f"a client was cut short at {cut[0]} of {cut[1]} bytes" if cut else "no client was being served"
        )
        return stopped(PROG, stop, what)
    return OK


def serve_concurrently(args, place) -> int:
    """The Twisted edition; it logs per-chunk lines at debug level, so only without --quiet."""
    from poetrynow.cli.common import raise_fd_limit
    from poetrynow.cli.serving import serve
    from poetrynow.servers.deploy import slow_poetry

    raise_fd_limit()
    tree = slow_poetry(
        args.poem,
        args.num_bytes,
        args.delay,
        place,
        log_clients=not args.quiet,
        faults=faults_from(args),
        rate=args.rate,
        plain=args.plain,
    )
    return serve(PROG, tree, quiet=args.quiet, verbose=True)


if __name__ == "__main__":
    sys.exit(main())
