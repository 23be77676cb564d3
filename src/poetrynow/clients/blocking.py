"""Part 2's blocking client: one poem after another, each read to the end.

Every ``recv`` blocks until the server sends more, so the run takes the sum of
the servers' schedules: Figure 1 of Part 1, in text.
"""

from __future__ import annotations

import socket
from typing import Iterator, Sequence

from poetrynow.address import Address
from poetrynow.clients import EngineOptions, drain
from poetrynow.events import Connected, Event, Failed, Finished, Received, Started, describe_error

READ_SIZE = 65536


def get_poetry(task: int, address: Address, options: EngineOptions) -> Iterator[Event]:
    """Download one poem, blocking, and yield what happens on the way."""
    clock = options.clock
    yield Started(task, address, clock())
    try:
        sock = socket.create_connection((address.host, address.port), timeout=options.timeout)
    except OSError as error:
        yield Failed(task, address, describe_error(error), clock())
        return
    yield Connected(task, address, clock())
    chunks: list[bytes] = []
    received = 0
    with sock:
        try:
            while data := sock.recv(READ_SIZE):
                chunks.append(data)
                received += len(data)
                yield Received(task, address, len(data), clock())
        except OSError as error:
            yield Failed(task, address, describe_error(error), clock(), received)
            return
    yield Finished(task, address, b"".join(chunks), clock())


def events(addresses: Sequence[Address], options: EngineOptions) -> Iterator[Event]:
    for task, address in enumerate(addresses, 1):
        yield from get_poetry(task, address, options)


def run(addresses: Sequence[Address], sink, options: EngineOptions) -> None:
    drain(events(addresses, options), sink)
