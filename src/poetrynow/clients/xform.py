"""The transform request for engines without Twisted: blocking and asyncio flavours.

The protocol is the sans-I/O netstring codec either way: send ``name.poem`` as
one netstring, read to the end, and the answer is the one netstring that came
back. A close without an answer, or a malformed one, is a TransformFailed with
the same one-line reasons the Twisted client gives, and the task keeps its poem.
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
            writer.write(request(name, poem))
            await writer.drain()
            while data := await asyncio.wait_for(reader.read(READ_SIZE), timeout):
                if answer.feed(data):
                    break
        finally:
            writer.close()
    except OSError as error:  # TimeoutError too, from wait_for
        raise TransformFailed(read_failure(error, timeout)) from None
    return answer.result()


def transform_blocking(task: PoemTask, poem: bytes, options: EngineOptions) -> bytes:
    """Send a task's poem through ``options.xform``; report how it went; return the poem to keep."""
    assert options.xform is not None
    try:
        answer = xform_blocking(options.xform, options.transform, poem, options.timeout)
    except Exception as problem:  # any failure keeps the original poem
        return _kept(task, options, problem, poem)
    task.transformed(options.transform)
    return answer


async def transform_async(task: PoemTask, poem: bytes, options: EngineOptions) -> bytes:
    """:func:`transform_blocking` for coroutines."""
    assert options.xform is not None
    try:
        answer = await xform_async(options.xform, options.transform, poem, options.timeout)
    except Exception as problem:
        return _kept(task, options, problem, poem)
    task.transformed(options.transform)
    return answer


def _kept(task: PoemTask, options: EngineOptions, problem: Exception, poem: bytes) -> bytes:
    unexpected(problem)
    task.transform_failed(options.transform, describe_error(problem))
    return poem
