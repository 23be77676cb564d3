"""Part 21's Haskell clients in Python: each poem a lazy stream of lines.

``poem_lines`` is the poem as Haskell's ``lines <$> hGetContents h`` sees it: an
async generator that reads the socket only as lines are asked for. As in
haskell-client-1, every stream is forced by a lightweight thread of its own (a
task), which reports each read as it arrives (``Task 2: got 64 bytes ...``, as
every engine does) and passes the lines on; the printer then walks the poems in
command-line order, like ``mapM_ putStr poems``: the first poem's lines appear as they arrive, and each
later poem, which has been accumulating all along, as soon as everything before
it is printed (haskell-client-2).

Lines are split on the newline byte, which never occurs inside a UTF-8
character, and each poem's lines are decoded by one incremental decoder, so a
character split across reads comes out whole.
"""

from __future__ import annotations

import asyncio
import codecs
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing

from poetrynow.address import Address
from poetrynow.clients import EngineOptions, aio, no_data, unexpected
from poetrynow.clients.connect import Dialled, start_all
from poetrynow.clients.errors import PoemTimeout, check_size
from poetrynow.clients.task import PoemTask, tasks_for
from poetrynow.clients.xform import transform_async
from poetrynow.events import PoemLine, Sink, describe_error


async def line_batches(
    reader: asyncio.StreamReader,
    timeout: float | None,
    max_bytes: int | None = None,
    on_read: Callable[[bytes], None] | None = None,
) -> AsyncIterator[list[bytes]]:
    """The poem's whole lines (newline kept), as each read completes them; the rest at the end.

    ``on_read`` sees each read as it comes, before it is cut into lines: the
    engine reports reads, as every engine does, not lines.

    A line still coming is kept in a bytearray and only the newly read bytes are
    searched for a newline, so a poem of one 32 MB line costs what 32 MB cost, not
    the square of its reads.
    """
    pending = bytearray()
    async with aclosing(aio.reads(reader, timeout)) as chunks:
        while True:
            try:
                data = await anext(chunks, b"")
            except TimeoutError:
                raise PoemTimeout(no_data(timeout)) from None
            if not data:
                break
            start = len(pending)
            check_size(start + len(data), max_bytes)  # one endless line must not fill memory
            if on_read is not None:
                on_read(data)
            pending += data
            cut = 0
            lines = []
            while (end := pending.find(b"\n", max(start, cut))) >= 0:
                lines.append(bytes(pending[cut : end + 1]))
                cut = end + 1
            if cut:
                del pending[:cut]
                yield lines
    if pending:
        yield [bytes(pending)]


async def poem_lines(
    reader: asyncio.StreamReader, timeout: float | None, max_bytes: int | None = None
) -> AsyncIterator[bytes]:
    """The poem, line by line (newline kept), read from the socket only when asked."""
    async for lines in line_batches(reader, timeout, max_bytes):
        for line in lines:
            yield line


class LazyPoem:
    """One task: the forcing task hands lines on; ``lines()`` is the poem as it comes.

    The lines wait in a deque, and the printer is woken once for all that came
    meanwhile: a queue's put and get per line cost more than the line's bytes.
    """

    def __init__(self, task: PoemTask, options: EngineOptions, dialled: Dialled = None):
        self.task, self.options, self.dialled = task, options, dialled
        self.pending: deque[bytes] = deque()
        self.more = asyncio.Event()
        self.ended = False

    def hand_on(self, lines: list[bytes]) -> None:
        self.pending.extend(lines)
        self.more.set()

    async def force(self) -> None:
        try:
            await self._download()
        except Exception as problem:  # a failure ends this poem's stream, not the run
            unexpected(problem)
            self.task.failed(describe_error(problem))
        finally:
            self.ended = True
            self.more.set()

    async def _download(self) -> None:
        task, options = self.task, self.options
        reader, writer = await aio.open_stream(task.address, self.dialled, options.timeout)
        task.connected()
        try:
            batches = line_batches(reader, options.timeout, options.max_bytes, on_read=task.got)
            async for lines in batches:
                if options.xform is None:
                    self.hand_on(lines)
        finally:
            writer.close()
        poem = task.poem
        if options.xform is not None:
            # A transform needs the whole poem; its answer becomes the stream.
            poem = await transform_async(task, poem, options)
            self.hand_on(poem.splitlines(keepends=True))
        task.finished(poem)

    async def lines(self) -> AsyncIterator[list[bytes]]:
        """The poem's lines as they become ready: all that are ready at once, in one list.

        A poem whose turn comes after it was whole is one list; the first poem
        comes a read's worth of lines at a time.
        """
        while True:
            await self.more.wait()
            self.more.clear()
            if self.pending:
                ready = list(self.pending)
                self.pending.clear()
                yield ready
            if self.ended and not self.pending:
                return


async def get_poetry(tasks: Sequence[PoemTask], options: EngineOptions, sink: Sink) -> None:
    # Every connection asked of the kernel first: a server's schedule starts when it accepts.
    poems = [LazyPoem(task, options, dialled) for task, dialled in zip(tasks, start_all(tasks), strict=True)]
    forcing = [asyncio.create_task(poem.force()) for poem in poems]
    for poem in poems:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        task = poem.task
        async for ready in poem.lines():
            text = decoder.decode(b"".join(ready))
            sink(PoemLine(task=task.task, address=task.address, text=text, t=options.clock()))
        tail = decoder.decode(b"", final=True)
        if tail:
            sink(PoemLine(task=task.task, address=task.address, text=tail, t=options.clock()))
    await asyncio.gather(*forcing)


def run(addresses: Sequence[Address], sink: Sink, options: EngineOptions) -> None:
    tasks = tasks_for(addresses, sink, options)
    aio.run(get_poetry(tasks, options, sink), aio.loop_factory(options.watch))


event_loop = aio.event_loop
