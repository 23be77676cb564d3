"""One fault costs one connection: a bug in one client's handling is logged and costs that client.

Left alone, an exception in a server's code for one client goes where Twisted
sends it, and that is seldom where it should. From a listening port's
``doRead`` it reaches the reactor, which stops the port: the process lives on
and no longer listens. From a timer it is logged as an unhandled error in a
delayed call, and the connection stays open with nobody left to serve it. From
a Deferred's callback it waits in the Deferred until the garbage collector
reports it.

Here every such place catches what it raises, logs it once with its traceback
(``log_failure``: twistd's log file prints it whole, the commands' terminal log
the traceback under its line) and resets that client's connection, so the
client sees a failure rather than a short poem that ends like a whole one.
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.interfaces import ISSLTransport
from twisted.logger import Logger

from poetrynow.servers.common.listen import reset_on_close

log = Logger(namespace="poetrynow.servers.common.guard")

#: The words of the log line; ``peer`` names the client.
BUG = "A bug while serving {peer}; its connection is reset, the server goes on"

Method = TypeVar("Method", bound=Callable[..., Any])


def tcp_of(transport: Any) -> Any:
    """The TCP transport itself: beneath TLS (the TLS protocol's public ``transport``), or ``transport``."""
    beneath = getattr(transport, "transport", None)
    return beneath if beneath is not None and ISSLTransport.providedBy(transport) else transport


def reset_transport(transport: Any) -> None:
    """Close a Twisted connection with a TCP reset (SO_LINGER 0) rather than a FIN.

    Over TLS the TCP transport beneath is reset instead (:func:`tcp_of`): aborting the TLS
    one would send its close_notify first, and the peer would take a cut stream for a clean end."""
    transport = tcp_of(transport)
    handle = getattr(transport, "getHandle", None)  # a real socket, not a test's transport
    if handle is not None:
        try:
            reset_on_close(handle())
        except Exception:  # a handle of another kind (TLS): aborting is reset enough
            pass
    transport.abortConnection()


def reset_fd(fd: int) -> None:
    """Close a bare socket's descriptor with a TCP reset; a descriptor that is no socket is just closed."""
    try:
        bare = socket.socket(fileno=fd)
    except OSError:  # no socket: the descriptor is still ours to close, once
        os.close(fd)
        return
    reset_on_close(bare)
    try:
        bare.close()  # the socket object owns the descriptor now: never closed twice
    except OSError:
        pass


def peer_of_protocol(protocol: Any) -> str:
    """The client of ``protocol`` for the log line, whatever state the bug left it in."""
    try:
        peer = protocol.transport.getPeer()
        return f"{peer.host}:{peer.port}"
    except Exception:
        return "a client"


def costs_one_connection(method: Method) -> Method:
    """Wrap a protocol's method: what it raises is logged once and resets that client's connection.

    For the methods Twisted calls from a port, a timer or a Deferred, where an
    exception would cost more than this one client.
    """

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception:
            log.failure(BUG, peer=peer_of_protocol(self))
            transport = getattr(self, "transport", None)
            if transport is not None:
                try:
                    reset_transport(transport)
                except Exception:
                    log.failure("Could not reset the connection of {peer}", peer=peer_of_protocol(self))
            return None

    return guarded  # type: ignore[return-value]
