"""The transform request for engines without Twisted: blocking and asyncio flavours.

The protocol is the sans-I/O netstring codec either way: send ``name.poem`` as
one netstring, read to the end, and the answer is the one netstring that came
back. A close without an answer, or a malformed one, is a TransformFailed with
the same one-line reasons the Twisted client gives, and the task keeps its poem.

``--timeout`` holds while the request is sent too: a transform server that
accepts and never reads fills the socket's buffers, and a send that waits on
it for the timeout gives up, ``no data for S s`` as for one that never
answers. The blocking socket's timeout does that for each send; asyncio's
``drain`` has no timeout of its own, so :func:`send` gives it one.
"""

from __future__ import annotations

import asyncio

from poetrynow.address import Address
from poetrynow.clients import READ_SIZE, EngineOptions, read_failure, unexpected
from poetrynow.clients.aio import open_stream
from poetrynow.clients.connect import open_blocking
from poetrynow.clients.errors import NO_ANSWER, TransformFailed
from poetrynow.clients.task import PoemTask
from poetrynow.events import describe_error
from poetrynow.netstring import DEFAULT_MAX_LENGTH, NetstringDecoder, NetstringError, encode

#: Bytes handed to the transport before each wait for the peer to take them.
SEND_SIZE = 65536


def request(name: str, poem: bytes) -> bytes:
    return encode(name.encode("utf-8") + b"." + poem)


class Answer:
    """Feeds the reply's bytes to a netstring decoder; ``result()`` is the poem or raises."""

    def __init__(self, max_length: int = DEFAULT_MAX_LENGTH):
        self.decoder = NetstringDecoder(max_length)
        self.payload: bytes | None = None

    def feed(self, data: bytes) -> bool:
        """True once the answer is complete and reading can stop."""
        try:
            payloads = self.decoder.feed(data)
        except NetstringError as problem:
            raise TransformFailed(str(problem)) from None
        if payloads:
            self.payload = payloads[0]
        return self.payload is not None

    def result(self) -> bytes:
        if self.payload is None:
            raise TransformFailed(NO_ANSWER)
        return self.payload


def xform_blocking(server: Address, name: str, poem: bytes, timeout: float | None = None) -> bytes:
    """Ask the transform server, with blocking sockets (the threads engine's way)."""
    answer = Answer()
    try:
        with open_blocking(server, timeout) as sock:
            sock.sendall(request(name, poem))
            while data := sock.recv(READ_SIZE):
                if answer.feed(data):
                    break
    except OSError as error:  # TimeoutError too: the socket's timeout
        raise TransformFailed(read_failure(error, timeout)) from None
    return answer.result()


async def xform_async(server: Address, name: str, poem: bytes, timeout: float | None = None) -> bytes:
    """Ask the transform server with asyncio streams."""
    answer = Answer()
    try:
        reader, writer = await open_stream(server, None, timeout)
        try:
            await send(writer, request(name, poem), timeout)
            while data := await asyncio.wait_for(reader.read(READ_SIZE), timeout):
                if answer.feed(data):
                    break
        finally:
            writer.close()
    except OSError as error:  # TimeoutError too, from wait_for
        raise TransformFailed(read_failure(error, timeout)) from None
    return answer.result()


async def send(writer: asyncio.StreamWriter, data: bytes, timeout: float | None) -> None:
    """Write ``data``; TimeoutError once the peer has left no room for the next piece for ``timeout`` seconds.

    A piece at a time, each drain under the timeout: a slow reader that keeps
    taking is waited for, as the blocking socket's ``sendall`` waits, and one
    that takes nothing is given up on.
    """
    for start in range(0, len(data), SEND_SIZE):
        writer.write(data[start : start + SEND_SIZE])
        async with asyncio.timeout(timeout):
            await writer.drain()


def transform_blocking(task: PoemTask, poem: bytes, options: EngineOptions) -> bytes:
    """Send a task's poem through ``options.xform``; report how it went; return the poem to keep."""
    assert options.xform is not None
    asked = options.clock()
    try:
        answer = xform_blocking(options.xform, options.transform, poem, options.timeout)
    except Exception as problem:  # any failure keeps the original poem
        return _kept(task, options, problem, poem, asked)
    task.transformed(options.transform, began=asked)
    return answer


async def transform_async(task: PoemTask, poem: bytes, options: EngineOptions) -> bytes:
    """:func:`transform_blocking` for coroutines."""
    assert options.xform is not None
    asked = options.clock()
    try:
        answer = await xform_async(options.xform, options.transform, poem, options.timeout)
    except Exception as problem:
        return _kept(task, options, problem, poem, asked)
    task.transformed(options.transform, began=asked)
    return answer


def _kept(task: PoemTask, options: EngineOptions, problem: Exception, poem: bytes, asked: float) -> bytes:
    unexpected(problem)
    task.transform_failed(options.transform, describe_error(problem), began=asked)
    return poem
