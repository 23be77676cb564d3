"""``fastpoetry POEM``: the whole poem at once to every client, then close."""

from __future__ import annotations

import argparse
import sys

from poetrynow.cli.common import add_listen_options, add_plain_option, command_parser, raise_fd_limit, where
from poetrynow.cli.serving import serve

PROG = "fastpoetry"


def parser() -> argparse.ArgumentParser:
    p = command_parser(prog=PROG, description="Serve a poem as fast as the network allows.")
    p.add_argument("poem", help="a bundled poem's name (see 'poetrynow poems') or a file path")
    add_listen_options(p, reuse_port=True)
    p.add_argument("--quiet", action="store_true", help="no line per client")
    add_plain_option(p)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    from poetrynow.servers.deploy import fast_poetry

    raise_fd_limit()
    tree = fast_poetry(args.poem, where(p, args), log_clients=not args.quiet, plain=args.plain)
    return serve(PROG, tree, quiet=args.quiet)


if __name__ == "__main__":
    sys.exit(main())
