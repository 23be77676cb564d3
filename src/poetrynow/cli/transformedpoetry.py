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
)
from poetrynow.cli.serving import serve
from poetrynow.netstring import DEFAULT_MAX_LENGTH
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
        help="seconds a client may take to send its request (default: 60)",
    )
    p.add_argument("--quiet", action="store_true", help="log only refused requests")
    add_plain_option(
        p, help="the plain edition, which is the transform server's only one (taken for scripts)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    from poetrynow.servers.deploy import transformed_poetry

    raise_fd_limit()
    tree = transformed_poetry(
        where(p, args), args.max_length, args.timeout or None, log_clients=not args.quiet
    )
    return serve(PROG, tree, quiet=args.quiet)


if __name__ == "__main__":
    sys.exit(main())
