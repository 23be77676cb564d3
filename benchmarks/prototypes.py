"""Prototypes that go around the costly layers, measured beside the real engines (fanout.py).

Not engines of the project: each does what an engine does for the fan-out
benchmark (connect, read to the end, report every read and the end as events)
on the same event loop as a real engine, without that engine's layer of
per-connection objects. If a prototype keeps to the schedule where its engine
does not, the difference is that layer's cost, not the event loop's.

- ``twisted-bare``: Twisted's reactor, no transports, protocols or Deferreds: a
  small IReadDescriptor per socket, dialled as the engines dial.
- ``asyncio-protocols``: asyncio (uvloop when installed) with a Protocol per
  connection: no streams, no coroutine per download, no timer per read.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence

from zope.interface import implementer

from poetrynow.address import Address
from poetrynow.clients import READ_SIZE, EngineOptions
from poetrynow.clients.aio import loop_factory
from poetrynow.clients.connect import start_all
from poetrynow.clients.task import tasks_for
from poetrynow.events import Sink, describe_error


def twisted_bare(addresses: Sequence[Address], sink: Sink, options: EngineOptions) -> None:
    from twisted.internet.interfaces import IReadDescriptor

    from poetrynow.clients.twisted_engine import new_reactor

    reactor = new_reactor()
    tasks = tasks_for(addresses, sink, options)
    if not tasks:
        return
    left = [len(tasks)]

    @implementer(IReadDescriptor)
    class Reader:
        def __init__(self, task, sock: socket.socket):
            self.task, self.sock = task, sock
            task.connected()

        def fileno(self) -> int:
            return self.sock.fileno()

        def logPrefix(self) -> str:
            return "Reader"

        def doRead(self):
            try:
                data = self.sock.recv(READ_SIZE)
            except BlockingIOError:
                return None
            except OSError as error:
                reason = describe_error(error)
                self._end(lambda: self.task.failed(reason))
                return None
            if data:
                self.task.got(data)
            else:
                self._end(self.task.finished)
            return None

        def connectionLost(self, reason):
            self._end(lambda: self.task.failed("lost"))

        def _end(self, report) -> None:
            reactor.removeReader(self)
            self.sock.close()
            report()
            left[0] -= 1
            if not left[0]:
                reactor.stop()

    def start():
        for task, sock in zip(tasks, start_all(tasks), strict=True):
            if isinstance(sock, socket.socket):
                reactor.addReader(Reader(task, sock))
            else:
                task.failed(describe_error(sock) if sock else "not dialled")
                left[0] -= 1

    reactor.callWhenRunning(start)
    reactor.run(installSignalHandlers=False)


class PoemProtocol(asyncio.Protocol):
    def __init__(self, task, done: asyncio.Future):
        self.task, self.done = task, done

    def connection_made(self, transport):
        self.task.connected()

    def data_received(self, data: bytes):
        self.task.got(data)

    def connection_lost(self, exc):
        if exc is None:
            self.task.finished()
        else:
            self.task.failed(describe_error(exc))
        self.done.set_result(None)


def asyncio_protocols(addresses: Sequence[Address], sink: Sink, options: EngineOptions) -> None:
    async def main():
        loop = asyncio.get_running_loop()
        tasks = tasks_for(addresses, sink, options)
        waits = []
        for task, sock in zip(tasks, start_all(tasks), strict=True):
            done = loop.create_future()
            waits.append(done)
            await loop.create_connection(lambda task=task, done=done: PoemProtocol(task, done), sock=sock)
        await asyncio.gather(*waits)

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main())


PROTOTYPES = {"twisted-bare": twisted_bare, "asyncio-protocols": asyncio_protocols}
