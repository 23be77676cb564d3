"""``poetry-proxy [host:]port``: a caching, cancelling proxy in front of a poetry server."""

from __future__ import annotations

import argparse
import sys

from poetrynow.cli.common import add_listen_options, address_arg, raise_fd_limit, seconds
from poetrynow.cli.serving import serve

PROG = "poetry-proxy"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Serve the poem of another poetry server: fetched once, then "
        "cached; a fetch nobody waits for any more is cancelled.",
    )
    p.add_argument(
        "upstream", type=address_arg, metavar="ADDRESS", help="[host:]port of the poetry server to proxy"
    )
    add_listen_options(p)
    p.add_argument(
        "--timeout",
        type=seconds,
        default=None,
        help="give up on an upstream that sends nothing for this many seconds",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from poetrynow.servers.deploy import poetry_proxy

    raise_fd_limit()
    return serve(PROG, poetry_proxy(args.upstream, args.port, args.iface, args.timeout or None))


if __name__ == "__main__":
    sys.exit(main())
