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
from typing import AsyncIterator, Sequence

from poetrynow.address import Address
from poetrynow.clients import EngineOptions
from poetrynow.clients.errors import PoemTimeout
from poetrynow.clients.xform import transform_async
from poetrynow.events import Connected, Failed, Finished, PoemLine, Received, Started, describe_error

READ_SIZE = 65536
END = object()


async def poem_lines(reader: asyncio.StreamReader, timeout: float | None) -> AsyncIterator[bytes]:
    """The poem, line by line (newline kept), read from the socket only when asked."""
    pending = b""
    while True:
        try:
            data = await asyncio.wait_for(reader.read(READ_SIZE), timeout)
        except asyncio.TimeoutError:
            raise PoemTimeout(f"no data for {timeout:g} s") from None
        if not data:
            break
        *lines, pending = (pending + data).split(b"\n")
        for line in lines:
            yield line + b"\n"
    if pending:
        yield pending


class LazyPoem:
    """One task: the forcing task fills ``buffer``; ``lines()`` is the poem as it comes."""

    def __init__(self, task: int, address: Address, options: EngineOptions, sink):
        self.task, self.address, self.options, self.sink = task, address, options, sink
        self.buffer: asyncio.Queue = asyncio.Queue()

    async def force(self) -> None:
        try:
            await self._download()
        except Exception as problem:  # a failure ends this poem's stream, not the run
            self.sink(Failed(self.task, self.address, describe_error(problem), self.options.clock()))
        finally:
            self.buffer.put_nowait(END)

    async def _download(self) -> None:
        task, address, options, sink = self.task, self.address, self.options, self.sink
        clock = options.clock
        sink(Started(task, address, clock()))
        reader, writer = await asyncio.wait_for(asyncio.open_connection(address.host, address.port),
                                                options.timeout)
        sink(Connected(task, address, clock()))
        got: list[bytes] = []
        try:
            async for line in poem_lines(reader, options.timeout):
                got.append(line)
                sink(Received(task, address, len(line), clock()))
                if options.xform is None:
                    self.buffer.put_nowait(line)
        except Exception as problem:
            sink(Failed(task, address, describe_error(problem), clock(), sum(map(len, got))))
            return
        finally:
            writer.close()
        poem = b"".join(got)
        if options.xform is not None:
            # A transform needs the whole poem; its answer becomes the stream.
            event, poem = await transform_async(task, address, poem, options)
            sink(event)
            for line in poem.splitlines(keepends=True):
                self.buffer.put_nowait(line)
        sink(Finished(task, address, poem, clock()))

    async def lines(self) -> AsyncIterator[bytes]:
        while (line := await self.buffer.get()) is not END:
            yield line


async def get_poetry(addresses: Sequence[Address], options: EngineOptions, sink) -> None:
    poems = [LazyPoem(task, address, options, sink) for task, address in enumerate(addresses, 1)]
    forcing = [asyncio.create_task(poem.force()) for poem in poems]
    for poem in poems:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        async for line in poem.lines():
            sink(PoemLine(poem.task, poem.address, decoder.decode(line), options.clock()))
        tail = decoder.decode(b"", final=True)
        if tail:
            sink(PoemLine(poem.task, poem.address, tail, options.clock()))
    await asyncio.gather(*forcing)


def run(addresses: Sequence[Address], sink, options: EngineOptions) -> None:
    asyncio.run(get_poetry(list(addresses), options, sink))
