"""What every command shares: argument types, one-line errors, signals, limits."""

from __future__ import annotations

import argparse
import resource
import signal
import sys

from poetrynow.address import AddressError, parse_address

#: Exit statuses, the same for every command.
OK, FAILED, USAGE = 0, 1, 2


def address_arg(text: str):
    try:
        return parse_address(text)
    except AddressError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _number(text: str, convert, expected: str, valid, rule: str):
    """Convert an option's text, or raise the one-line error argparse prints."""
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not valid(value):
        raise argparse.ArgumentTypeError(f"{rule}, got {text}")
    return value


def positive_int(text: str) -> int:
    return _number(text, int, "a whole number", lambda v: v >= 1, "must be at least 1")


def non_negative_int(text: str) -> int:
    return _number(text, int, "a whole number", lambda v: v >= 0, "must be 0 or more")


def non_negative_float(text: str) -> float:
    return _number(text, float, "a number of seconds", lambda v: 0 <= v < float("inf"),
                   "must be a finite number of seconds >= 0")


def port_arg(text: str) -> int:
    return _number(text, int, "a port number", lambda v: 0 <= v <= 65535, "a port is from 0 to 65535")


def add_listen_options(parser: argparse.ArgumentParser) -> None:
    """``--port`` and ``--iface``, which every listening command takes."""
    parser.add_argument("--port", type=port_arg, default=0,
                        help="port to listen on (default: 0, a free port)")
    parser.add_argument("--iface", default="localhost",
                        help="interface to listen on (default: localhost)")


def timeline_problem(path: str | None) -> str | None:
    """Why ``--timeline PATH`` could not be drawn (bad suffix, no matplotlib), or None.

    Asked before a run starts, so a user does not wait for a picture that cannot come.
    """
    if not path:
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


def exit_on_sigterm() -> None:
    """Let SIGTERM end a command the way Ctrl-C does: cleanly, through finally blocks."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(OK))


def raise_fd_limit() -> int:
    """Lift the soft open-files limit to the hard one: thousands of sockets need it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft
