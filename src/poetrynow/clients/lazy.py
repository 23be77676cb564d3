"""Part 21's Haskell clients in Python: each poem a lazy stream of lines.

``poem_lines`` is the poem as Haskell's ``lines <$> hGetContents h`` sees it: an
async generator that reads the socket only as lines are asked for. As in
haskell-client-1, every stream is forced by a lightweight thread of its own (a
task), which notes each line as it arrives (``Task 2: got 20 bytes ...``) and
passes it on; the printer then walks the poems in command-line order, like
``mapM_ putStr poems``: the first poem's lines appear as they arrive, and each
later poem, which has been accumulating all along, as soon as everything before
it is printed (haskell-client-2).

Lines are split on the newline byte, which never occurs inside a UTF-8
character, and each poem's lines are decoded by one incremental decoder, so a
character split across reads comes out whole.
"""

from __future__ import annotations

import asyncio
import codecs
from collections.abc import AsyncIterator, Sequence

from poetrynow.address import Address
from poetrynow.clients import READ_SIZE, EngineOptions, aio, no_data, unexpected
from poetrynow.clients.errors import PoemTimeout, check_size
from poetrynow.clients.task import PoemTask, tasks_for
from poetrynow.clients.xform import transform_async
from poetrynow.events import PoemLine, Sink, describe_error

END = object()


async def poem_lines(
    reader: asyncio.StreamReader, timeout: float | None, max_bytes: int | None = None
) -> AsyncIterator[bytes]:
    """The poem, line by line (newline kept), read from the socket only when asked.

    A line still coming is kept in a bytearray and only the newly read bytes are
    searched for a newline, so a poem of one 32 MB line costs what 32 MB cost, not
    the square of its reads.
    """
    pending = bytearray()
    while True:
        try:
            data = await asyncio.wait_for(reader.read(READ_SIZE), timeout)
        except TimeoutError:
            raise PoemTimeout(no_data(timeout)) from None
        if not data:
            break
        start = len(pending)
        check_size(start + len(data), max_bytes)  # one endless line must not fill memory
        pending += data
        cut = 0
        while (end := pending.find(b"\n", max(start, cut))) >= 0:
            yield bytes(pending[cut : end + 1])
            cut = end + 1
        if cut:
            del pending[:cut]
    if pending:
        yield bytes(pending)


def event_loop() -> str:
    return "asyncio"


class LazyPoem:
    """One task: the forcing task fills ``buffer``; ``lines()`` is the poem as it comes."""

    def __init__(self, task: PoemTask, options: EngineOptions):
        self.task, self.options = task, options
        self.buffer: asyncio.Queue = asyncio.Queue()

    async def force(self) -> None:
        try:
            await self._download()
        except Exception as problem:  # a failure ends this poem's stream, not the run
            unexpected(problem)
            self.task.failed(describe_error(problem))
        finally:
            self.buffer.put_nowait(END)

    async def _download(self) -> None:
        task, options = self.task, self.options
        task.started()
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(task.address.host, task.address.port), options.timeout
        )
        task.connected()
        try:
            async for line in poem_lines(reader, options.timeout, options.max_bytes):
                task.got(line)
                if options.xform is None:
                    self.buffer.put_nowait(line)
        finally:
            writer.close()
        poem = task.poem
        if options.xform is not None:
            # A transform needs the whole poem; its answer becomes the stream.
            poem = await transform_async(task, poem, options)
            for line in poem.splitlines(keepends=True):
                self.buffer.put_nowait(line)
        task.finished(poem)

    async def lines(self) -> AsyncIterator[bytes]:
        while (line := await self.buffer.get()) is not END:
            yield line


async def get_poetry(tasks: Sequence[PoemTask], options: EngineOptions, sink: Sink) -> None:
    poems = [LazyPoem(task, options) for task in tasks]
    forcing = [asyncio.create_task(poem.force()) for poem in poems]
    for poem in poems:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        task = poem.task
        async for line in poem.lines():
            sink(PoemLine(task=task.task, address=task.address, text=decoder.decode(line), t=options.clock()))
        tail = decoder.decode(b"", final=True)
        if tail:
            sink(PoemLine(task=task.task, address=task.address, text=tail, t=options.clock()))
    await asyncio.gather(*forcing)


def run(addresses: Sequence[Address], sink: Sink, options: EngineOptions) -> None:
    tasks = tasks_for(addresses, sink, options)
    aio.run(get_poetry(tasks, options, sink))
