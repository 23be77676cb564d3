"""The threaded model of Part 1's Figure 2: a thread per poem, each one blocking.

Each thread runs plain blocking code (connect, recv until the server closes,
then the transform if asked) and puts what happens on a queue; the main thread
is the only one that touches the sink, so the reporter never sees two threads
at once. The operating system does the interleaving: every thread waits in its
own recv, and whichever has data runs.
"""

from __future__ import annotations

import queue
import socket
import threading
from typing import Sequence

from poetrynow.address import Address
from poetrynow.clients import EngineOptions
from poetrynow.clients.xform import transform_blocking
from poetrynow.events import Connected, Failed, Finished, Received, Started, describe_error

READ_SIZE = 65536
STACK_SIZE = 256 << 10  # thousands of threads; each needs little stack
DONE = object()


def get_poetry(task: int, address: Address, options: EngineOptions, put) -> None:
    """One thread's work: the whole life of one task, told to ``put``."""
    clock = options.clock
    put(Started(task, address, clock()))
    try:
        sock = socket.create_connection((address.host, address.port), timeout=options.timeout)
    except OSError as error:
        put(Failed(task, address, describe_error(error), clock()))
        return
    put(Connected(task, address, clock()))
    chunks: list[bytes] = []
    with sock:
        try:
            while data := sock.recv(READ_SIZE):
                chunks.append(data)
                put(Received(task, address, len(data), clock()))
        except TimeoutError:
            put(Failed(task, address, f"no data for {options.timeout:g} s", clock(), sum(map(len, chunks))))
            return
        except OSError as error:
            put(Failed(task, address, describe_error(error), clock(), sum(map(len, chunks))))
            return
    poem = b"".join(chunks)
    if options.xform is not None:
        event, poem = transform_blocking(task, address, poem, options)
        put(event)
    put(Finished(task, address, poem, clock()))


def run(addresses: Sequence[Address], sink, options: EngineOptions) -> None:
    events: queue.SimpleQueue = queue.SimpleQueue()

    def worker(task: int, address: Address) -> None:
        try:
            get_poetry(task, address, options, events.put)
        except Exception as problem:  # a bug must cost one task, not hang the run
            events.put(Failed(task, address, describe_error(problem), options.clock()))
        finally:
            events.put(DONE)

    previous = threading.stack_size(STACK_SIZE)
    try:
        threads = [threading.Thread(target=worker, args=(task, address), daemon=True,
                                    name=f"poem-{task}") for task, address in enumerate(addresses, 1)]
        for thread in threads:
            thread.start()
    finally:
        threading.stack_size(previous)
    running = len(threads)
    while running:
        event = events.get()
        if event is DONE:
            running -= 1
        else:
            sink(event)
