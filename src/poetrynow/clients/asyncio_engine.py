"""The asyncio engine: async/await over asyncio streams, one coroutine per poem.

The same single-threaded loop as the select client and Twisted, written the way
today's Python writes it: each download reads like blocking code, and every
``await`` is where the loop may run another. With the ``speed`` extra installed,
the loop is uvloop's (libuv underneath); otherwise plain asyncio.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import aclosing

from poetrynow.address import Address
from poetrynow.clients import EngineOptions, aio, read_failure, unexpected
from poetrynow.clients.aio import event_loop, loop_factory
from poetrynow.clients.connect import Dialled, start_all
from poetrynow.clients.task import PoemTask, tasks_for
from poetrynow.clients.xform import transform_async
from poetrynow.events import Sink, describe_error


async def get_poetry(task: PoemTask, dialled: Dialled, options: EngineOptions) -> None:
    timeout = options.timeout
    try:
        reader, writer = await aio.open_stream(task.address, dialled, timeout)
    except OSError as error:  # TimeoutError too
        task.failed(describe_error(error))
        return
    task.connected()
    try:
        async with aclosing(aio.reads(reader, timeout)) as chunks:
            async for data in chunks:
                task.got(data)
    except OSError as error:  # TimeoutError too
        task.failed(read_failure(error, timeout))
        return
    finally:
        writer.close()
    poem = task.poem
    if options.xform is not None:
        poem = await transform_async(task, poem, options)
    task.finished(poem)


async def get_all(tasks: Sequence[PoemTask], options: EngineOptions) -> None:
    dialled = start_all(tasks)  # every connect asked for before the first coroutine runs
    results = await asyncio.gather(
        *(get_poetry(task, sock, options) for task, sock in zip(tasks, dialled, strict=True)),
        return_exceptions=True,
    )
    for task, result in zip(tasks, results, strict=True):
        if isinstance(result, Exception):  # a bug costs one task, not the run
            unexpected(result)
            task.failed(describe_error(result))


def run(addresses: Sequence[Address], sink: Sink, options: EngineOptions) -> None:
    tasks = tasks_for(addresses, sink, options)
    aio.run(get_all(tasks, options), loop_factory(options.watch))


__all__ = ["event_loop", "loop_factory", "run"]
