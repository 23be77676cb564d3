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
    command_parser,
    error,
    interrupt_on_signals,
    positive_int,
    seconds,
    stopped,
    where,
)
from poetrynow.poems import PoemNotFound, load_poem
from poetrynow.schedule import PoemSchedule
from poetrynow.servers.blocking import serve_forever
from poetrynow.servers.listen import ListenError, bound_name, closing_listener, listen

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
    p.add_argument(
        "--client-timeout",
        type=seconds,
        default=None,
        metavar="S",
        help="blocking edition: drop a client that reads nothing for S seconds, so it cannot hold up "
        "the others (default: four delays, at least 2 s)",
    )
    return p


def client_timeout(args) -> float:
    """``--client-timeout``, or four of the server's delays and at least two seconds."""
    return args.client_timeout if args.client_timeout else max(4 * args.delay, 2.0)


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    place = where(p, args)
    if args.reuse_port and not args.concurrent:
        p.error("--reuse-port is for --concurrent: the blocking server serves one client at a time anyway")
    if args.concurrent:
        return serve_concurrently(args, place)
    try:
        poem = load_poem(args.poem)
    except PoemNotFound as problem:
        return error(PROG, str(problem), USAGE)
    try:
        listener = listen(place)
    except ListenError as problem:
        return error(PROG, str(problem), FAILED)
    schedule = PoemSchedule(len(poem.data), args.num_bytes, args.delay)
    log = (lambda line: None) if args.quiet else (lambda line: print(line, flush=True))
    interrupt_on_signals()
    try:
        with closing_listener(listener):
            # Printed inside the try: a signal that comes as soon as a script reads the line is clean.
            print(f"Serving {args.poem} on {bound_name(listener)}.", flush=True)
            serve_forever(listener, poem.data, schedule, log, client_timeout(args))
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
    tree = slow_poetry(args.poem, args.num_bytes, args.delay, place, log_clients=not args.quiet)
    return serve(PROG, tree, quiet=args.quiet, verbose=True)


if __name__ == "__main__":
    sys.exit(main())
