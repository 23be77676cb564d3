"""Opening a listening socket, with the one-line errors every server shares."""

from __future__ import annotations

import os
import socket


class ListenError(OSError):
    """The server could not listen: port in use, unknown interface, no permission."""


def cannot_listen(iface: str, port: int, error: OSError) -> str:
    """The one-line reason every server gives when it cannot listen."""
    # A resolver error: a gaierror, or (from create_server) an OSError with its negative code.
    if isinstance(error, socket.gaierror) or (getattr(error, "errno", None) or 0) < 0:
        words = (error.strerror or "").partition(" (while attempting")[0]
        return f"cannot listen on {iface}:{port}: unknown interface ({words})"
    # create_server() and Twisted both wrap the OS's words in their own: keep the reason alone.
    reason = os.strerror(error.errno) if error.errno else str(error)
    return f"cannot listen on {iface}:{port}: {reason}"


def listen(iface: str, port: int, backlog: int = 1024) -> socket.socket:
    """A TCP socket listening on ``iface:port`` (port 0 picks a free one)."""
    try:
        return socket.create_server((iface, port), backlog=backlog)
    except OSError as error:
        raise ListenError(cannot_listen(iface, port, error)) from None
