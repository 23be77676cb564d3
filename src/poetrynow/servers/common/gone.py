"""Noticing clients that have gone while the slow server has nothing to send them.

A client's FIN does not say it has gone (it may have half-closed,
:mod:`poetrynow.servers.common.ending`); a send that fails does. Between two sends,
though, a slow server may wait a long time: ``--delay``, ``--accept-delay``,
``--stall-for``, ``--slow-close``, or a stall for ever. The fast edition's bare
clients are not watched by the reactor at all, and a Twisted transport stops
watching its socket once the client's FIN has come. A crowd of clients that
came and went in such a wait would hold a descriptor each until the wait ended.

Two things bound that:

- :class:`GoneWatch` asks the kernel, in one epoll set registered with the
  reactor as a single reader, to say when any watched socket breaks (a reset, a
  keepalive that went unanswered): the error and hang-up events epoll reports
  without being asked for reading or writing. The client is then dropped at
  once. Where there is no epoll (not Linux) nothing is watched and a gone client
  is noticed at the next send, as before.
- :func:`keep_alive` turns on TCP keepalive for every connection a listening
  socket accepts (the accepted sockets inherit it), so that a client which
  closed (FIN) and whose host has since forgotten the connection answers the
  next probe with a reset, which the watch hears. A client that only half-closed
  answers the probes and keeps its poem. Linux forgets a closed connection's
  half-open end after ``tcp_fin_timeout`` (a minute): with probes after
  :data:`KEEPALIVE_IDLE` quiet seconds, a gone client holds its descriptor about
  a minute and a half at most, whatever the server's waits.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReadDescriptor
from twisted.logger import Logger
from zope.interface import implementer

#: Seconds without traffic before the first keepalive probe, between probes, and probes before giving up.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_PROBES = 30, 10, 3

log = Logger(namespace="poetrynow.servers.common.gone")


def keep_alive(listening: socket.socket) -> None:
    """Turn on TCP keepalive, with short probes, for the connections ``listening`` accepts."""
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    except OSError:  # not TCP (a Unix socket)
        return
    # Linux names the idle time TCP_KEEPIDLE, macOS TCP_KEEPALIVE; each option this
    # system lacks or refuses leaves its default, and the others still apply.
    idle = getattr(socket, "TCP_KEEPIDLE", None) or getattr(socket, "TCP_KEEPALIVE", None)
    for option, value in (
        (idle, KEEPALIVE_IDLE),
        (getattr(socket, "TCP_KEEPINTVL", None), KEEPALIVE_INTERVAL),
        (getattr(socket, "TCP_KEEPCNT", None), KEEPALIVE_PROBES),
    ):
        if option is not None:
            try:
                listening.setsockopt(socket.IPPROTO_TCP, option, value)
            except OSError:
                pass


@implementer(IReadDescriptor)
class GoneWatch:
    """One epoll set of sockets to drop when they break, read by the reactor as one descriptor."""

    def __init__(self, reactor: Any):
        self.reactor = reactor
        self._gone: dict[int, Callable[[], None]] = {}
        self._epoll = select.epoll() if hasattr(select, "epoll") else None
        self._reading = False

    @property
    def works(self) -> bool:
        return self._epoll is not None

    def watch(self, fd: int, gone: Callable[[], None]) -> None:
        """Call ``gone()`` once if the socket ``fd`` breaks; until :meth:`forget` or its close."""
        if self._epoll is None:
            return
        try:
            self._epoll.register(fd, 0)  # no events asked for: only errors and hang-ups come
        except FileExistsError:
            self._epoll.modify(fd, 0)
        except OSError:  # closed already
            return
        self._gone[fd] = gone
        if not self._reading:
            self._reading = True
            self.reactor.addReader(self)

    def forget(self, fd: int, closing: bool = False) -> None:
        """Stop watching ``fd``: before it is handed to a transport, or, ``closing``, closed
        (the kernel drops a closed socket from the set itself, one call fewer)."""
        if self._gone.pop(fd, None) is not None and self._epoll is not None:
            if not closing:
                try:
                    self._epoll.unregister(fd)
                except OSError:  # closed already: the kernel dropped it from the set
                    pass
            self._rest_if_idle()

    def _rest_if_idle(self) -> None:
        """With nothing to watch, the reactor need not watch the set either."""
        if not self._gone and self._reading:
            self._reading = False
            self.reactor.removeReader(self)

    def fileno(self) -> int:
        return self._epoll.fileno() if self._epoll is not None else -1

    def doRead(self) -> None:
        for fd, _events in self._epoll.poll(0, 1024):  # type: ignore[union-attr]
            gone = self._gone.pop(fd, None)
            try:
                self._epoll.unregister(fd)  # type: ignore[union-attr]
            except OSError:
                pass
            if gone is not None:
                try:
                    gone()
                except Exception:
                    log.failure("A bug while dropping a client that had gone")
        if self._epoll is not None:
            self._rest_if_idle()

    def connectionLost(self, reason: Any) -> None:
        self.stop()

    def logPrefix(self) -> str:
        return "GoneWatch"

    def stop(self) -> None:
        self._gone.clear()
        self._rest_if_idle()
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None
