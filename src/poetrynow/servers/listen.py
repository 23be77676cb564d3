"""Opening a listening socket, with the one-line errors every server shares."""

from __future__ import annotations

import os
import socket


class ListenError(OSError):
    """The server could not listen: port in use, unknown interface, no permission."""


def listen(iface: str, port: int, backlog: int = 1024) -> socket.socket:
    """A TCP socket listening on ``iface:port`` (port 0 picks a free one)."""
    try:
        return socket.create_server((iface, port), backlog=backlog)
    except socket.gaierror as error:
        raise ListenError(f"cannot listen on {iface}:{port}: unknown interface ({error.strerror})") from None
    except OSError as error:
        # create_server() appends its own "(while attempting to bind ...)": keep the reason alone.
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise ListenError(f"cannot listen on {iface}:{port}: {reason}") from None
