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

A host name (``localhost:10000``) is not dialled up front: it may stand for
several addresses, tried in the resolver's order until one connects.
:func:`open_blocking` does that for the blocking engines, :class:`Attempts`
keeps the count for a loop that waits on connects itself.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING

from poetrynow.address import Address, ConnectFailed, ip_family, resolve
from poetrynow.events import describe_error

if TYPE_CHECKING:
    from poetrynow.clients.task import PoemTask

_UNDER_WAY = {0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY}


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


def open_blocking(address: Address, timeout: float | None) -> socket.socket:
    """A blocking socket connected to ``address``, trying each address a name resolves to.

    An IP literal fails with the OS's own error; a name that resolves fails with
    :class:`~poetrynow.address.ConnectFailed`, which names every address tried.
    """
    found = resolve(address)
    if found == [address]:
        return socket.create_connection((address.host, address.port), timeout=timeout)
    attempts = Attempts(found)
    while (target := attempts.next()) is not None:
        try:
            return socket.create_connection((target.host, target.port), timeout=timeout)
        except OSError as problem:
            attempts.failed(target, problem)
    raise attempts.error()


class Attempts:
    """The addresses a name resolved to, tried one after another; what each one said."""

    def __init__(self, found: Sequence[Address]):
        self.left = list(found)
        self.tried: list[tuple[str, str]] = []
        self.errno: int | None = None
        self.current: Address | None = None

    def next(self) -> Address | None:
        """The next address to try, or None when none is left."""
        self.current = self.left.pop(0) if self.left else None
        return self.current

    def failed(self, target: Address, problem: BaseException, words: str | None = None) -> None:
        self.tried.append((target.host, words if words is not None else describe_error(problem)))
        self.errno = getattr(problem, "errno", None) or self.errno

    def error(self) -> ConnectFailed:
        return ConnectFailed(self.tried, self.errno)

    def dial(self) -> socket.socket:
        """A non-blocking connect to the next address that is not refused at once; else the error."""
        while (target := self.next()) is not None:
            try:
                return connect_socket(_family(target.host), socket.SOCK_STREAM, 0, (target.host, target.port))
            except OSError as problem:
                self.failed(target, problem)
        raise self.error()


def _family(host: str) -> int:
    return ip_family(host) or socket.AF_INET
