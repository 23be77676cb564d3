"""What every command shares: argument types, one-line errors, signals, limits."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from poetrynow import validate
from poetrynow.descriptors import raise_fd_limit
from poetrynow.stopping import Interrupted, interrupt_on_signals

__all__ = [
    "Interrupted",
    "interrupt_on_signals",
    "raise_fd_limit",
]  # for the commands, with the helpers below

T = TypeVar("T")

#: Exit statuses, the same for every command.
OK, FAILED, USAGE = 0, 1, 2


def arg(check: Callable[[str], T]) -> Callable[[str], T]:
    """A :mod:`poetrynow.validate` check as an argparse type: its ValueError, one usage line."""

    def convert(text: str) -> T:
        try:
            return check(text)
        except ValueError as problem:
            raise argparse.ArgumentTypeError(str(problem)) from None

    convert.__name__ = check.__name__
    return convert


address_arg = arg(validate.address)
positive_int = arg(validate.positive_int)
non_negative_int = arg(validate.non_negative_int)
seconds = arg(validate.seconds)
fraction = arg(validate.fraction)
rate = arg(validate.rate)
port_arg = arg(validate.port)
server_endpoint = arg(validate.server_endpoint)
writable_file = arg(validate.writable_file)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but its error is always one line: what the user typed is shown escaped."""

    def error(self, message: str):
        flat = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
        super().error(flat)


def command_parser(prog: str, description: str, **settings) -> argparse.ArgumentParser:
    """An argparse parser for one of the commands, with ``--version`` from the package metadata."""
    from poetrynow import __version__

    parser = OneLineParser(prog=prog, description=description, **settings)
    parser.add_argument("--version", action="version", version=f"{prog} (poetrynow) {__version__}")
    return parser


def add_listen_options(parser: argparse.ArgumentParser, reuse_port: bool = False) -> None:
    """``--listen``, or its short form ``--port`` and ``--iface``, which every server takes.

    ``reuse_port`` adds ``--reuse-port``, for the servers that can share a port.
    """
    parser.add_argument(
        "--port", type=port_arg, default=None, help="port to listen on (default: 0, a free port)"
    )
    parser.add_argument(
        "--iface",
        default=None,
        help="interface to listen on; a name listens on each address it resolves to (default: localhost)",
    )
    parser.add_argument(
        "--listen",
        type=server_endpoint,
        metavar="DESCRIPTION",
        default=None,
        help="a Twisted server endpoint instead: tcp:10000, tcp6:10000:interface=\\:\\:1, unix:/tmp/p.sock",
    )
    if reuse_port:
        parser.add_argument(
            "--reuse-port",
            action="store_true",
            help="share the port (SO_REUSEPORT) with other copies of this server: run one per core, "
            "or more than one process's open-file limit of clients",
        )


PLAIN_HELP = (
    "the plain edition: the articles' Protocol, Factory and timers, on Twisted's public names only "
    "(by default the fast edition runs where its start-up check passes)"
)


def add_plain_option(parser: argparse.ArgumentParser, help: str = PLAIN_HELP) -> None:
    """``--plain``: every Twisted server's plain edition (:mod:`poetrynow.servers.common.fastpath`)."""
    parser.add_argument("--plain", action="store_true", help=help)


def where(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """Where the server listens; ``--listen`` with ``--port`` or ``--iface`` is a usage error."""
    from poetrynow.servers.common.listen import Where

    try:
        return Where.chosen(args.port, args.iface, args.listen, getattr(args, "reuse_port", False))
    except ValueError as problem:
        parser.error(str(problem))


def timeline_problem(path: str | None) -> str | None:
    """Why ``--timeline PATH`` could not be drawn (bad suffix, no matplotlib), or None.

    Asked before a run starts, so a user does not wait for a picture that cannot come.
    """
    if not path or path == "-":  # "-": the text timeline, on stdout
        return None
    from poetrynow.timeline import TimelineError, require

    try:
        require(path)
    except TimelineError as problem:
        return str(problem)
    return None


def error(prog: str, message: str, status: int = FAILED) -> int:
    """Print ``prog: error: message`` on stderr and return ``status``."""
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    return status


def poems_line(stop: Interrupted) -> str:
    """How many poems had arrived when a run was stopped, as ``session.fetch`` counted them."""
    arrived, tasks = getattr(stop, "arrived", 0), getattr(stop, "tasks", 0)
    return f"{arrived} of {tasks} poem{'s' if tasks != 1 else ''} had arrived; the rest were cut short"


def stopped(prog: str, stop: Interrupted, what: str) -> int:
    """The one line a command prints on stderr when a signal stops it; its exit status."""
    print(f"{prog}: stopped by {stop.name}: {what}", file=sys.stderr, flush=True)
    return stop.status


def open_trace(prog: str, path: str | None) -> tuple[Any, int | None]:
    """``--trace PATH``: the open trace (or None), or the one-line error's status if it cannot be written."""
    if not path:
        return None, None
    from poetrynow.events import describe_error
    from poetrynow.tracing import TraceFile

    try:
        return TraceFile.create(path), None
    except OSError as failure:
        return None, error(prog, f"cannot write the trace to {path}: {describe_error(failure)}", USAGE)


def close_trace(prog: str, trace: Any, path: str) -> int | None:
    """Close a run's trace; a line on stderr if it was cut short, and FAILED if it could not be written."""
    if trace is None:
        return None
    from poetrynow.events import describe_error

    trace.close()
    if trace.error is not None:
        return error(prog, f"the trace in {path} is incomplete: {describe_error(trace.error)}", FAILED)
    if trace.truncated:
        print(f"{prog}: the trace in {path} stopped at {trace.most:,} events; the rest were left out",
              file=sys.stderr, flush=True)  # fmt: skip
    return None
