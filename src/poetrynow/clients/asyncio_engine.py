"""The asyncio engine: async/await over asyncio streams, one coroutine per poem.

The same single-threaded loop as the select client and Twisted, written the way
today's Python writes it: each download reads like blocking code, and every
``await`` is where the loop may run another. With the ``speed`` extra installed,
the loop is uvloop's (libuv underneath); otherwise plain asyncio.
"""

from __future__ import annotations

import asyncio
from typing import Sequence

from poetrynow.address import Address
from poetrynow.clients import EngineOptions
from poetrynow.clients.xform import transform_async
from poetrynow.events import Connected, Failed, Finished, Received, Started, describe_error

READ_SIZE = 65536


def loop_factory():
    """uvloop's loop when it is installed, else None (asyncio's own)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def get_poetry(task: int, address: Address, options: EngineOptions, sink) -> None:
    clock = options.clock
    sink(Started(task, address, clock()))
    received = 0
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(address.host, address.port),
                                                options.timeout)
    except (OSError, asyncio.TimeoutError) as error:
        sink(Failed(task, address, describe_error(error), clock()))
        return
    sink(Connected(task, address, clock()))
    chunks: list[bytes] = []
    try:
        while data := await asyncio.wait_for(reader.read(READ_SIZE), options.timeout):
            chunks.append(data)
            received += len(data)
            sink(Received(task, address, len(data), clock()))
    except asyncio.TimeoutError:
        sink(Failed(task, address, f"no data for {options.timeout:g} s", clock(), received))
        return
    except OSError as error:
        sink(Failed(task, address, describe_error(error), clock(), received))
        return
    finally:
        writer.close()
    poem = b"".join(chunks)
    if options.xform is not None:
        event, poem = await transform_async(task, address, poem, options)
        sink(event)
    sink(Finished(task, address, poem, clock()))


async def get_all(addresses: Sequence[Address], options: EngineOptions, sink) -> None:
    results = await asyncio.gather(*(get_poetry(task, address, options, sink)
                                     for task, address in enumerate(addresses, 1)), return_exceptions=True)
    for (task, address), result in zip(enumerate(addresses, 1), results):
        if isinstance(result, Exception):  # a bug costs one task, not the run
            sink(Failed(task, address, describe_error(result), options.clock()))


def run(addresses: Sequence[Address], sink, options: EngineOptions) -> None:
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(get_all(addresses, options, sink))
