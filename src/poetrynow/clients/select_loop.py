"""Part 2's asynchronous client: every server at once, one loop, no threads.

Sockets are non-blocking and connect in parallel; one loop waits on all of them
(with :mod:`selectors`, epoll on Linux, so it is not capped at select()'s 1024
descriptors) and reads from each whatever is there, until it would block. The run
takes as long as the slowest server: Figure 3 of Part 1.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
from dataclasses import dataclass, field
from typing import Iterator, Sequence

from poetrynow.address import Address
from poetrynow.clients import EngineOptions, drain
from poetrynow.events import Connected, Event, Failed, Finished, Received, Started, describe_error

READ_SIZE = 65536
_IN_PROGRESS = {0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY}


@dataclass
class Download:
    """One task's state between trips round the loop."""

    task: int
    address: Address
    sock: socket.socket
    last_activity: float
    connected: bool = False
    chunks: list[bytes] = field(default_factory=list)

    @property
    def received(self) -> int:
        return sum(map(len, self.chunks))


def _connect(address: Address) -> tuple[socket.socket, int]:
    """Start a non-blocking connect; returns the socket and connect_ex's code."""
    family, type_, proto, _, sockaddr = socket.getaddrinfo(
        address.host, address.port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, type_, proto)
    sock.setblocking(False)
    return sock, sock.connect_ex(sockaddr)


def events(addresses: Sequence[Address], options: EngineOptions) -> Iterator[Event]:
    clock = options.clock
    selector = selectors.DefaultSelector()

    def drop(download: Download) -> None:
        selector.unregister(download.sock)
        download.sock.close()

    try:
        for task, address in enumerate(addresses, 1):
            yield Started(task, address, clock())
            try:
                sock, code = _connect(address)
            except OSError as error:
                yield Failed(task, address, describe_error(error), clock())
                continue
            if code not in _IN_PROGRESS:
                sock.close()
                yield Failed(task, address, os.strerror(code), clock())
                continue
            selector.register(sock, selectors.EVENT_WRITE, Download(task, address, sock, clock()))

        while selector.get_map():
            for key, _ in selector.select(_wait(selector, options)):
                download: Download = key.data
                download.last_activity = clock()
                if not download.connected:
                    code = download.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if code:
                        drop(download)
                        yield Failed(download.task, download.address, os.strerror(code), clock())
                        continue
                    download.connected = True
                    selector.modify(download.sock, selectors.EVENT_READ, download)
                    yield Connected(download.task, download.address, clock())
                    continue
                yield from _read(download, drop, clock)
            if options.timeout is not None:
                yield from _expire(selector, options, drop)
    finally:
        for key in list(selector.get_map().values()):
            key.fileobj.close()
        selector.close()


def _read(download: Download, drop, clock) -> Iterator[Event]:
    """Read what is there without blocking; report it, and the end if it came."""
    got = 0
    closed = False
    try:
        while True:
            data = download.sock.recv(READ_SIZE)
            if not data:
                closed = True
                break
            download.chunks.append(data)
            got += len(data)
    except (BlockingIOError, InterruptedError):
        pass
    except OSError as error:
        drop(download)
        yield Failed(download.task, download.address, describe_error(error), clock(), download.received)
        return
    if got:
        yield Received(download.task, download.address, got, clock())
    if closed:
        drop(download)
        yield Finished(download.task, download.address, b"".join(download.chunks), clock())


def _wait(selector, options: EngineOptions) -> float | None:
    """How long select may block: until the first idle deadline, or forever."""
    if options.timeout is None:
        return None
    first = min(key.data.last_activity for key in selector.get_map().values())
    return max(0.0, first + options.timeout - options.clock())


def _expire(selector, options: EngineOptions, drop) -> Iterator[Event]:
    now = options.clock()
    for key in list(selector.get_map().values()):
        download: Download = key.data
        if now - download.last_activity >= options.timeout:
            drop(download)
            yield Failed(download.task, download.address,
                         f"no data for {options.timeout:g} s", now, download.received)


def run(addresses: Sequence[Address], sink, options: EngineOptions) -> None:
    drain(events(addresses, options), sink)
