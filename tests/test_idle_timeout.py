"""The asyncio engines' idle timeout counts the server's silence, never the consumer's time.

``aio.reads`` (and the lazy engine's ``poem_lines`` over it) under a fake clock: an
event loop whose time moves only when it has nothing to do but wait, and then jumps
straight to its next timer. Seconds of silence take microseconds; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import selectors
from contextlib import aclosing

from poetrynow.clients import aio
from poetrynow.clients.errors import PoemTimeout
from poetrynow.clients.lazy import poem_lines
from tests.time_limit import SynchronousTestCase

TIMEOUT = 1.0


class JumpingSelector(selectors.DefaultSelector):
    """A selector that never blocks: a wait for ``timeout`` seconds moves the loop's clock instead."""

    def __init__(self, clock: FakeClockLoop):
        super().__init__()
        self.clock = clock

    def select(self, timeout=None):
        ready = super().select(0)
        if not ready:
            if timeout is None:
                raise AssertionError("the loop would wait for ever: no timer and nothing to read")
            self.clock.now += timeout
        return ready


class FakeClockLoop(asyncio.SelectorEventLoop):
    """asyncio's loop on a clock of its own, which only waiting moves."""

    def __init__(self):
        self.now = 0.0
        super().__init__(JumpingSelector(self))

    def time(self) -> float:
        return self.now


def run(main):
    loop = FakeClockLoop()
    try:
        return loop.run_until_complete(main)
    finally:
        loop.close()


async def trickle(reader: asyncio.StreamReader, chunks: tuple[bytes, ...], every: float) -> None:
    """A server that sends a chunk every ``every`` seconds, then closes."""
    for chunk in chunks:
        await asyncio.sleep(every)
        reader.feed_data(chunk)
    reader.feed_eof()


class SlowConsumerTests(SynchronousTestCase):
    """The consumer awaits longer than the timeout after each chunk, while the data keeps coming."""

    chunks = tuple(f"line {n}\n".encode() for n in range(12))  # one every half timeout

    def test_reads_do_not_count_the_consumers_time(self):
        async def main():
            reader = asyncio.StreamReader()
            server = asyncio.create_task(trickle(reader, self.chunks, TIMEOUT / 2))
            got = []
            async with aclosing(aio.reads(reader, TIMEOUT)) as chunks:
                async for data in chunks:
                    got.append(data)
                    await asyncio.sleep(1.5 * TIMEOUT)  # the consumer's own time
            await server
            return got

        got = run(main())
        self.assertEqual(b"".join(got), b"".join(self.chunks))
        self.assertGreaterEqual(len(got), 4)  # several reads, each after the consumer's time

    def test_poem_lines_with_a_slow_consumer(self):
        async def main():
            reader = asyncio.StreamReader()
            server = asyncio.create_task(trickle(reader, self.chunks, TIMEOUT / 2))
            lines = []
            async for line in poem_lines(reader, TIMEOUT):
                lines.append(line)
                await asyncio.sleep(1.5 * TIMEOUT)
            await server
            return lines

        self.assertEqual(run(main()), list(self.chunks))


class SilentServerTests(SynchronousTestCase):
    def test_a_silent_server_still_times_out_after_the_timeout(self):
        async def main():
            loop = asyncio.get_running_loop()
            reader = asyncio.StreamReader()
            began = loop.time()
            with self.assertRaises(TimeoutError):
                async with aclosing(aio.reads(reader, TIMEOUT)) as chunks:
                    async for _ in chunks:
                        pass
            return loop.time() - began

        self.assertAlmostEqual(run(main()), TIMEOUT, delta=0.01)

    def test_a_server_that_stalls_after_a_slow_consumers_chunk_times_out_counting_from_the_read(self):
        # The consumer holds the first chunk for three timeouts; the server then says no
        # more. The timeout counts from the read that waits, not from the chunk before.
        async def main():
            loop = asyncio.get_running_loop()
            reader = asyncio.StreamReader()
            reader.feed_data(b"the only line\n")
            read_began = None
            with self.assertRaises(PoemTimeout):
                async for _ in poem_lines(reader, TIMEOUT):
                    await asyncio.sleep(3 * TIMEOUT)
                    read_began = loop.time()
            return loop.time() - read_began

        self.assertAlmostEqual(run(main()), TIMEOUT, delta=0.01)
