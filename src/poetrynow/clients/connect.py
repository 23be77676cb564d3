"""Every connection of a run started at once, before the engine's own machinery.

A server's schedule for a client starts when it accepts the connection, so a
run of ten thousand downloads takes the schedule plus the time it took to ask
for the last connection. The engines' usual ways to connect (Twisted's
endpoints and connectors, asyncio's ``open_connection``) each build a few
objects per connection before asking the kernel; ten thousand of them cost a
Twisted run half a second and an asyncio run a third of one, measured, before
the last server had started serving. The kernel's own work is 18 microseconds
a connection on loopback.

So the engines that fan out first :func:`dial` every plain TCP address (an IP
literal, not a host name or an endpoint description) in one tight loop, then
wrap each socket in their own transport: asyncio's ``open_connection(sock=...)``
or Twisted's ``adoptStreamConnection``. A connection still under way when it is
wrapped (a real network, not loopback) is waited for first: :func:`is_connected`
tells which. What is not dialled goes the engine's usual way.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING

from poetrynow.address import Address

if TYPE_CHECKING:
    from poetrynow.clients.task import PoemTask

_UNDER_WAY = {0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY}


def ip_family(host: str) -> int | None:
    """AF_INET or AF_INET6 for an IP literal; None for a name (which needs a lookup)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return family
    return None


def dial(address: Address) -> socket.socket | None:
    """A non-blocking socket whose connect to ``address`` is under way or done.

    None when the address is not a plain IP address (the engine connects its
    usual way); OSError when the connect failed at once (refused on loopback).
    """
    if address.endpoint is not None:
        return None
    family = ip_family(address.host)
    if family is None:
        return None
    return connect_socket(family, socket.SOCK_STREAM, 0, (address.host, address.port))


def connect_socket(family: int, type_: int, proto: int, sockaddr: tuple) -> socket.socket:
    """A non-blocking socket, its connect to ``sockaddr`` under way or done; OSError if refused at once."""
    sock = socket.socket(family, type_, proto)
    sock.setblocking(False)
    code = sock.connect_ex(sockaddr)
    if code not in _UNDER_WAY:
        sock.close()
        raise OSError(code, os.strerror(code))
    return sock


Dialled = socket.socket | OSError | None


def start_all(tasks: Sequence[PoemTask]) -> list[Dialled]:
    """Start each task (its Started event) and :func:`dial` it, in turn; a failure kept in place."""
    dialled: list[Dialled] = []
    for task in tasks:
        task.started()
        try:
            dialled.append(dial(task.address))
        except OSError as problem:
            dialled.append(problem)
    return dialled


def is_connected(sock: socket.socket) -> bool:
    """Whether the connect has completed (on loopback it nearly always has, at once)."""
    try:
        sock.getpeername()
    except OSError:
        return False
    return True


def connect_error(sock: socket.socket) -> OSError | None:
    """Why a connect that has ended (the socket became writable) failed; None if it did not."""
    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    return OSError(code, os.strerror(code)) if code else None
