"""``transformedpoetry``: the transform server (netstring ``name.poem`` in, poem out)."""

from __future__ import annotations

import argparse
import sys

from poetrynow.cli.common import (
    add_listen_options,
    add_plain_option,
    command_parser,
    positive_int,
    raise_fd_limit,
    seconds,
    where,
    writable_file,
)
from poetrynow.cli.serving import serve
from poetrynow.netstring import DEFAULT_MAX_LENGTH
from poetrynow.servers.transform.costs import KINDS, PLACES, QUEUE_PER_WORKER
from poetrynow.transforms import TRANSFORMS

PROG = "transformedpoetry"


def parser() -> argparse.ArgumentParser:
    p = command_parser(
        prog=PROG,
        description="Transform poems: send one netstring 'name.poem', get the "
        f"transformed poem back. Transforms: {', '.join(TRANSFORMS)}.",
    )
    add_listen_options(p)
    p.add_argument(
        "--max-length",
        type=positive_int,
        default=DEFAULT_MAX_LENGTH,
        help=f"largest request in bytes (default: {DEFAULT_MAX_LENGTH})",
    )
    p.add_argument(
        "--timeout",
        type=seconds,
        default=60.0,
        help="seconds a client may take to send its request, and the work to be done after it, "
        "plus its cost for each transform held (--queue) (default: 60; 0: no limit)",
    )
    p.add_argument("--quiet", action="store_true", help="log only refused requests")
    add_cost_options(p)
    add_plain_option(
        p, help="the plain edition, which is the transform server's only one (taken for scripts)"
    )
    return p


def add_cost_options(p: argparse.ArgumentParser) -> None:
    """Part 20's warning as an experiment: what each transform costs, and where it is done."""
    cost = p.add_argument_group("the cost of a transform (Part 20)")
    cost.add_argument(
        "--cost",
        type=seconds,
        default=0.0,
        metavar="S",
        help="seconds of work each transform costs (default: 0, none)",
    )
    cost.add_argument(
        "--cost-kind",
        choices=KINDS,
        default=KINDS[0],
        help="wait: a blocking wait, as a blocking database call would be; cpu: S seconds of Python "
        "work (CPU time of the thread doing it), which holds the GIL (default: wait)",
    )
    cost.add_argument(
        "--cost-in",
        choices=PLACES,
        default=PLACES[0],
        help="where the work runs: the reactor's thread (blocking every other client), a thread "
        "pool, or a process pool (default: loop)",
    )
    cost.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        metavar="N",
        help="threads in the pool (default: 10) or processes (default: one per core it may use)",
    )
    cost.add_argument(
        "--queue",
        type=positive_int,
        default=None,
        metavar="N",
        help="transforms the threads or processes may hold at once, at work or waiting for one; "
        f"one more is refused (default: {QUEUE_PER_WORKER} per worker)",
    )
    cost.add_argument(
        "--work-log",
        type=writable_file,
        default=None,
        metavar="FILE",
        help="append a JSON line per transform done: when it began and ended, and which worker did it",
    )


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    from poetrynow.servers.deploy import transformed_poetry
    from poetrynow.servers.transform.costs import Cost

    raise_fd_limit()
    tree = transformed_poetry(
        where(p, args),
        args.max_length,
        args.timeout or None,
        log_clients=not args.quiet,
        cost=Cost(args.cost, args.cost_kind),
        cost_in=args.cost_in,
        workers=args.workers,
        work_log=args.work_log,
        queue=args.queue,
    )
    return serve(PROG, tree, quiet=args.quiet)


if __name__ == "__main__":
    sys.exit(main())
