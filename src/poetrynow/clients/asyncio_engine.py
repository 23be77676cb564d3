"""The asyncio engine: async/await over asyncio streams, one coroutine per poem.

The same single-threaded loop as the select client and Twisted, written the way
today's Python writes it: each download reads like blocking code, and every
``await`` is where the loop may run another. With the ``speed`` extra installed,
the loop is uvloop's (libuv underneath); otherwise plain asyncio.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from poetrynow.address import Address
from poetrynow.clients import READ_SIZE, EngineOptions, aio, read_failure, unexpected
from poetrynow.clients.task import PoemTask, tasks_for
from poetrynow.clients.xform import transform_async
from poetrynow.events import Sink, describe_error


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when it is installed, else None (asyncio's own)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def event_loop() -> str:
    """The loop a run is on, for ``--json``'s summary."""
    return "uvloop" if loop_factory() is not None else "asyncio"


async def get_poetry(task: PoemTask, options: EngineOptions) -> None:
    task.started()
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(task.address.host, task.address.port), options.timeout
        )
    except (OSError, TimeoutError) as error:
        task.failed(describe_error(error))
        return
    task.connected()
    try:
        while data := await asyncio.wait_for(reader.read(READ_SIZE), options.timeout):
            task.got(data)
    except OSError as error:  # TimeoutError too, from wait_for
        task.failed(read_failure(error, options.timeout))
        return
    finally:
        writer.close()
    poem = task.poem
    if options.xform is not None:
        poem = await transform_async(task, poem, options)
    task.finished(poem)


async def get_all(tasks: Sequence[PoemTask], options: EngineOptions) -> None:
    results = await asyncio.gather(*(get_poetry(task, options) for task in tasks), return_exceptions=True)
    for task, result in zip(tasks, results):
        if isinstance(result, Exception):  # a bug costs one task, not the run
            unexpected(result)
            task.failed(describe_error(result))


def run(addresses: Sequence[Address], sink: Sink, options: EngineOptions) -> None:
    tasks = tasks_for(addresses, sink, options)
    aio.run(get_all(tasks, options), loop_factory())
