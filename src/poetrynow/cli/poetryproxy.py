"""``poetry-proxy [host:]port``: a caching, cancelling proxy in front of a poetry server."""

from __future__ import annotations

import argparse
import sys

from poetrynow.cli.common import (
    add_listen_options,
    add_plain_option,
    address_arg,
    command_parser,
    positive_int,
    raise_fd_limit,
    seconds,
    where,
)
from poetrynow.cli.serving import serve
from poetrynow.clients.errors import DEFAULT_MAX_BYTES

PROG = "poetry-proxy"


def parser() -> argparse.ArgumentParser:
    p = command_parser(
        prog=PROG,
        description="Serve the poem of another poetry server: fetched once, then "
        "cached; a fetch nobody waits for any more is cancelled.",
    )
    p.add_argument(
        "upstream", type=address_arg, metavar="ADDRESS", help="[host:]port of the poetry server to proxy"
    )
    add_listen_options(p, reuse_port=True)
    p.add_argument("--quiet", action="store_true", help="log no line per client (cache hits are counted)")
    p.add_argument(
        "--timeout",
        type=seconds,
        default=None,
        help="give up on an upstream that sends nothing for this many seconds",
    )
    p.add_argument(
        "--max-bytes",
        type=positive_int,
        default=DEFAULT_MAX_BYTES,
        metavar="N",
        help=f"the largest poem fetched; an upstream that sends more is cut off, nothing cached "
        f"(default: {DEFAULT_MAX_BYTES})",
    )
    add_plain_option(p)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    from poetrynow.servers.deploy import poetry_proxy

    raise_fd_limit()
    return serve(
        PROG,
        poetry_proxy(
            args.upstream,
            where(p, args),
            args.timeout or None,
            log_clients=not args.quiet,
            max_bytes=args.max_bytes,
            plain=args.plain,
        ),
        quiet=args.quiet,
    )


if __name__ == "__main__":
    sys.exit(main())
