"""Where a server listens, and the one-line errors every server gives when it cannot.

A server is told where to listen either by ``--port``/``--iface`` (the short form)
or by ``--listen``, a Twisted server endpoint description (``tcp:10000``,
``tcp6:10000:interface=\\:\\:1``, ``unix:/tmp/poetry.sock``, ``ssl:...``).
:class:`Where` holds either, and turns both into a description: the Twisted
servers hand it to ``serverFromString``, and the blocking server, which has no
reactor, reads the tcp, tcp6 and unix forms itself (:func:`listen`). This module
does not import Twisted.

An interface given as a name listens on every address the name resolves to,
all on one port (:func:`listen_on_each`): ``localhost`` is ``::1`` first on
many systems and ``127.0.0.1`` first on others, and a client may try either.
The default, ``localhost``, always takes in ``127.0.0.1`` too, the address a
client given a bare port dials.
"""

from __future__ import annotations

import errno
import functools
import os
import socket
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from poetrynow.address import DEFAULT_HOST, split_description

#: A connect storm of thousands must not overflow the accept queue.
BACKLOG = 4096


class ListenError(OSError):
    """The server could not listen: port in use, unknown interface, no permission."""


def cannot_listen(label: str, error: OSError) -> str:
    """The one-line reason every server gives when it cannot listen on ``label``."""
    # A resolver error: a gaierror, or (from create_server) an OSError with its negative code.
    if isinstance(error, socket.gaierror) or (getattr(error, "errno", None) or 0) < 0:
        words = (error.strerror or "").partition(" (while attempting")[0]
        return f"cannot listen on {label}: unknown interface ({words})"
    # create_server() and Twisted both wrap the OS's words in their own: keep the reason alone.
    reason = os.strerror(error.errno) if error.errno else str(error)
    return f"cannot listen on {label}: {reason}"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(":", "\\:")


REUSE_NEEDS_A_PORT = "--reuse-port needs a TCP port to share: with port 0 each process would get its own"


@dataclass(frozen=True)
class Where:
    """``--port``/``--iface``, or ``--listen DESCRIPTION``."""

    port: int = 0
    iface: str = "localhost"
    endpoint: str | None = None
    #: SO_REUSEPORT: several server processes listen on the one port, the kernel spreads clients.
    reuse_port: bool = False

    @classmethod
    def chosen(
        cls, port: int | None, iface: str | None, listen: str | None, reuse_port: bool = False
    ) -> Where:
        """``--listen``, or ``--port``/``--iface`` (None: not given); ValueError when both are,
        or when ``--reuse-port`` has no fixed TCP port to share."""
        if listen is not None:
            if port is not None or iface is not None:
                raise ValueError("give --listen, or --port and --iface, not both")
            kind, args, kwargs = split_description(listen)
            fixed = (args or [kwargs.get("port", "0")])[0] not in ("", "0")
            if reuse_port and not (kind in ("tcp", "tcp6") and fixed):
                raise ValueError(REUSE_NEEDS_A_PORT)
            return cls(endpoint=listen, reuse_port=reuse_port)
        if reuse_port and not port:
            raise ValueError(REUSE_NEEDS_A_PORT)
        return cls(port or 0, iface or "localhost", reuse_port=reuse_port)

    @property
    def label(self) -> str:
        """How errors and logs name the place: ``localhost:10000`` or the description."""
        return self.endpoint if self.endpoint is not None else f"{self.iface}:{self.port}"

    def addresses(self) -> list[str]:
        """The IP addresses ``--iface`` stands for: itself, or each one a name resolves to."""
        try:
            infos = socket.getaddrinfo(self.iface, None, type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            raise ListenError(cannot_listen(self.label, error)) from None
        found: list[str] = []
        for info in infos:
            if str(info[4][0]) not in found:
                found.append(str(info[4][0]))
        if self.iface.lower().rstrip(".") == "localhost" and DEFAULT_HOST not in found:
            found.append(DEFAULT_HOST)
        return found

    def description(self, address: str | None = None, port: int | None = None) -> str:
        """The Twisted server endpoint description: ``--listen``'s, or TCP on one of
        :meth:`addresses` (the first by default) and ``port`` (``--port`` by default).
        TCP gets a deep backlog unless it names one."""
        if self.endpoint is not None:
            kind, _, kwargs = split_description(self.endpoint)
            if kind in ("tcp", "tcp6") and "backlog" not in kwargs:
                return f"{self.endpoint}:backlog={BACKLOG}"
            return self.endpoint
        if address is None:
            address = self.addresses()[0]
        kind = "tcp6" if ":" in address else "tcp"
        return f"{kind}:{self.port if port is None else port}:interface={_escape(address)}:backlog={BACKLOG}"


#: How a listen fails on an address this host does not have (``::1`` with IPv6 off).
UNAVAILABLE = {errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT}

#: Rounds of port 0 picks: the port the kernel gave the first address may be taken on the next.
PORT_ROUNDS = 8


def listen_on_each(
    where: Where, open_one: Callable[[str], Any], port_of: Callable[[Any], int], close: Callable[[Any], Any]
) -> list:
    """A listener for each address ``where`` stands for, all on one port; OSError if none can be.

    ``open_one(description)`` listens on one (raising OSError when it cannot),
    ``port_of`` tells the port it got, ``close`` undoes it. With port 0 the
    kernel picks a port for the first address and the rest take the same one;
    when that port is taken on another address, the round starts again. An
    address the host does not have is passed over, as long as one listens.
    """
    if where.endpoint is not None:
        return [open_one(where.description())]
    addresses = where.addresses()
    problem: OSError | None = None
    for _ in range(PORT_ROUNDS):
        opened: list = []
        unavailable: list[OSError] = []
        port = where.port
        try:
            for address in addresses:
                try:
                    listener = open_one(where.description(address, port))
                except OSError as error:
                    if error.errno not in UNAVAILABLE:
                        raise
                    unavailable.append(error)
                    continue
                opened.append(listener)
                port = port or port_of(listener)
        except BaseException as error:
            for listener in opened:
                close(listener)
            if where.port or not opened or getattr(error, "errno", None) != errno.EADDRINUSE:
                raise
            problem = error  # type: ignore[assignment]  # an OSError: its errno says so
            continue
        if not opened:
            raise unavailable[0]
        return opened
    assert problem is not None
    raise problem


def listen(where: Where) -> list[socket.socket]:
    """Blocking listening sockets for the blocking server (tcp, tcp6 or unix): one per address."""
    return _each(where, _listen_one)


def bind_each(where: Where) -> list[socket.socket]:
    """Sockets bound where ``where`` says, as its listeners will be (SO_REUSEPORT with
    ``--reuse-port``), none of them listening: a start-up check of the place.

    Bound, not listening: on a shared port a listening socket joins the kernel's
    group at once, and clients it was given would be reset when the check closes it.
    """
    return _each(where, functools.partial(_bind_one, reuse_port=where.reuse_port))


def _each(where: Where, open_one: Callable[[str], socket.socket]) -> list[socket.socket]:
    try:
        return listen_on_each(where, open_one, lambda sock: sock.getsockname()[1], socket.socket.close)
    except ListenError:
        raise
    except OSError as error:
        raise ListenError(cannot_listen(where.label, error)) from None
    except (IndexError, KeyError, ValueError):
        raise ListenError(f"cannot listen on {where.label}: not an endpoint description") from None


def _listen_one(description: str, reuse_port: bool = False) -> socket.socket:
    sock = _bind_one(description, reuse_port)
    try:
        sock.listen(int(split_description(description)[2].get("backlog", BACKLOG)))
    except OSError:
        sock.close()
        raise
    return sock


def _bind_one(description: str, reuse_port: bool = False) -> socket.socket:
    """A socket bound as ``description`` says (tcp, tcp6 or unix), with a listener's options."""
    kind, args, kwargs = split_description(description)
    place: str | tuple[str, int]
    if kind == "unix":
        family, place = socket.AF_UNIX, args[0] if args else kwargs["address"]
    elif kind in ("tcp", "tcp6"):
        family = socket.AF_INET6 if kind == "tcp6" else socket.AF_INET
        interface = kwargs.get("interface", "::" if kind == "tcp6" else "0.0.0.0")
        place = (interface, int(args[0] if args else kwargs["port"]))
    else:
        raise ListenError(f"cannot listen on {description}: the blocking server takes tcp, tcp6 or unix")
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family != socket.AF_UNIX:
            # As create_server and Twisted's ports do: a port whose last clients linger in TIME_WAIT binds.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            # "::" takes IPv4 clients too, as Twisted's own tcp6 port on "::" does.
            dualstack = place[0] == "::" and socket.has_dualstack_ipv6()
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dualstack else 1)
        sock.bind(place)
    except OSError:
        sock.close()
        raise
    return sock


def listen_shared(description: str) -> socket.socket:
    """A listening TCP socket with SO_REUSEPORT, for a reactor to adopt (the plain edition's
    ``--reuse-port``: Twisted's endpoints do not set the option)."""
    return _listen_one(description, reuse_port=True)


def bound_name(sock: socket.socket) -> str:
    """``port N`` for a TCP socket, ``unix:PATH`` for a Unix one: the end of the listening line."""
    name = sock.getsockname()
    return f"unix:{name}" if isinstance(name, str) else f"port {name[1]}"


def peer_name(address) -> str:
    """A client's address for a log line: ``host:port``, or a Unix socket's path."""
    if hasattr(address, "host"):
        return f"{address.host}:{address.port}"
    name = getattr(address, "name", None)
    return (name.decode() if isinstance(name, bytes) else name) or "a Unix socket"


@contextmanager
def closing_listeners(socks: list[socket.socket]) -> Iterator[list[socket.socket]]:
    """Close listening sockets on the way out; a Unix socket's file goes with it."""
    names = [sock.getsockname() for sock in socks]
    try:
        yield socks
    finally:
        for sock, name in zip(socks, names):
            sock.close()
            if isinstance(name, str) and name:
                try:
                    os.unlink(name)
                except OSError:
                    pass


def reset_on_close(sock) -> None:
    """Make closing ``sock`` send a TCP reset (SO_LINGER 0), not a clean FIN.

    A server that stops mid-poem closes this way, so the client sees a failure
    rather than a short poem that ends like a whole one.
    """
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass  # not TCP (a Unix socket), or already gone
