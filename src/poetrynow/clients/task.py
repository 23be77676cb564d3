"""One task's poem as it arrives, told to a sink as events.

Every engine does the same bookkeeping whatever its model of concurrency: stamp
each event with the clock, keep the bytes, count them so that a failure can say
how many had arrived. :class:`PoemTask` does it once, without I/O; the engines
only decide when to call it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from threading import current_thread

from poetrynow.address import Address
from poetrynow.clients import EngineOptions
from poetrynow.clients.errors import EMPTY, check_size
from poetrynow.events import (
    Connected,
    Failed,
    Finished,
    Received,
    Sink,
    Started,
    Transformed,
    TransformFailed,
)


class PoemTask:
    """Task ``task``'s events for ``address``; its ``received`` bytes and its ``poem`` so far."""

    def __init__(
        self,
        task: int,
        address: Address,
        sink: Sink,
        clock: Callable[[], float],
        max_bytes: int | None = None,
        expect_bytes: int | None = None,
    ):
        self.task, self.address, self.sink, self.clock = task, address, sink, clock
        self.max_bytes = max_bytes
        self.expect_bytes = expect_bytes
        # One growing buffer, not a list of reads: a poem trickled in a byte a read would
        # cost some forty bytes of list and object per byte.
        self.buffer = bytearray()
        self.received = 0

    @property
    def poem(self) -> bytes:
        return bytes(self.buffer)

    def started(self) -> None:
        self.sink(Started(task=self.task, address=self.address, t=self.clock(), thread=current_thread().name))

    def connected(self, t: float | None = None) -> None:
        t = self.clock() if t is None else t
        self.sink(Connected(task=self.task, address=self.address, t=t, thread=current_thread().name))

    def got(self, data: bytes, began: float | None = None) -> None:
        """Keep ``data`` and report it as one Received event; PoemTooLarge past the limit.

        ``began``: when the engine began handling this read (default: now). The
        bytes past the limit are counted but not kept: memory stays bounded.
        """
        if began is None:
            began = self.clock()
        check_size(self.received + len(data), self.max_bytes)
        self.buffer += data
        self.counted(len(data), began=began)

    def counted(
        self, nbytes: int, t: float | None = None, began: float | None = None, process: str = ""
    ) -> None:
        """Report ``nbytes`` that arrived where the engine keeps the bytes itself.

        ``process`` names the actor that did the reading, when one did.
        """
        self.received += nbytes
        t = self.clock() if t is None else t
        self.sink(
            Received(
                task=self.task,
                address=self.address,
                nbytes=nbytes,
                t=t,
                thread=current_thread().name,
                began=t if began is None else began,
                process=process,
            )
        )

    def failed(self, reason: str) -> None:
        self.sink(
            Failed(
                task=self.task,
                address=self.address,
                reason=reason,
                received=self.received,
                t=self.clock(),
                thread=current_thread().name,
            )
        )

    def finished(self, poem: bytes | None = None, t: float | None = None) -> Finished | None:
        """Report the whole poem (the bytes kept, unless the engine hands another).

        A clean close with no byte at all is a failure, not an empty poem: a server
        that ran out of file descriptors, or was stopped, must not pass for a poet.
        """
        whole = self.poem if poem is None else poem
        if not whole:
            self.failed(EMPTY)
            return None
        if self.expect_bytes is not None and self.received != self.expect_bytes:
            self.failed(f"{self.received} bytes, not the {self.expect_bytes} expected")
            return None
        t = self.clock() if t is None else t
        event = Finished(task=self.task, address=self.address, poem=whole, t=t, thread=current_thread().name)
        self.sink(event)
        return event

    def transformed(self, transform: str, began: float | None = None) -> None:
        """The transform server answered; ``began``: when the request was made."""
        self.sink(
            Transformed(
                task=self.task,
                address=self.address,
                transform=transform,
                t=self.clock(),
                thread=current_thread().name,
                began=began,
            )
        )

    def transform_failed(self, transform: str, reason: str, began: float | None = None) -> None:
        self.sink(
            TransformFailed(
                task=self.task,
                address=self.address,
                transform=transform,
                reason=reason,
                t=self.clock(),
                thread=current_thread().name,
                began=began,
            )
        )


def tasks_for(addresses: Sequence[Address], sink: Sink, options: EngineOptions) -> list[PoemTask]:
    """A PoemTask per address, numbered from 1 in command-line order, with the run's clock and limit."""
    return [
        PoemTask(number, address, sink, options.clock, options.max_bytes, options.expect_bytes)
        for number, address in enumerate(addresses, 1)
    ]
