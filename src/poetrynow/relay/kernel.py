"""The kernel path: a direction with no toxic moves its bytes with splice(2), never through Python.

Most of a test suite's bytes meet no toxic, and copying each of them into Python
and out again was the relay's whole cost (docs/benchmarks.md). A direction that has
carried :data:`STREAM_AFTER` bytes is a stream; then a :class:`Splice`
moves them from the reader's socket into a pipe and from the pipe into the writer's
socket, in the kernel (``os.splice``, Linux, Python 3.10+). The reactor still drives
it: the splice watches a duplicate of each socket's descriptor (``os.dup``), so
that the transports keep their own registrations for the other direction, and
the reactor tells it when the reader has bytes and when the writer has room. It
reads only while the pipe is empty, so a writer that does not read stops its
reader, as the user-space path's flow control does.

Only the writer's transport can have bytes of this direction in its buffer (the
user-space path wrote them there); a splice starts when that buffer is empty, so
that nothing overtakes them (:func:`~poetrynow.relay.transport.buffered`). A splice that ends for a toxic
hands what the pipe holds to the writer's transport, in order, before the first
byte of the user-space path. The reader's FIN, and any error, go to the
direction as the transport would have given them.

Where splice is missing (another system, an older Python, a socket it refuses),
:func:`unavailable` says why, once, and the user-space path serves.
"""

from __future__ import annotations

import errno
import os
import threading
from typing import Any, Protocol

from twisted.internet.interfaces import IReadDescriptor, IWriteDescriptor
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from poetrynow.relay import pipes
from poetrynow.relay.pipes import check

log = Logger(namespace="poetrynow.relay")

#: Set by tests (and by ``--no-splice``): the user-space path serves every direction.
disabled = False

#: Bytes a direction carries through user space before it moves to the kernel. A splice costs
#: four descriptors (a pipe, and a duplicate of each socket), so an idle connection, or one
#: that trades a few small messages, keeps the two of its sockets and no more: 10,000 of them
#: fit in the open-files limit as before. A stream is past this within a few reads.
STREAM_AFTER = 1 << 18

#: The splices open now, and at most how many: a quarter of the open-files limit in their
#: descriptors, so that a burst of streams never takes the descriptors new connections need.
live = 0
#: The count is shared by every reactor of the process (a test's relay runs in a thread of its own).
_counting = threading.Lock()


def room() -> bool:
    """Whether another splice fits in its share of the open-files limit and of the pipe quota."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        soft = 1 << 20
    budget = pipes.pipe_budget()
    return (live + 1) * 4 <= soft // 4 and (budget is None or pipes.pipe_bytes + pipes.DEFAULT_PIPE <= budget)


#: What splice(2) answers for a socket it does not take (rather than one that failed).
REFUSED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP}


class Owner(Protocol):
    """What a splice needs of its direction (``relay.pipe``'s Direction)."""

    reader: Any
    writer: Any

    def spliced_eof(self) -> None: ...
    def spliced_error(self, error: OSError) -> None: ...
    def spliced_refused(self, error: OSError, held: bytes = b"") -> None: ...


_why_not: str | bool | None = False  # False: not yet checked


def unavailable() -> str | None:
    """Why splice cannot serve here, or None when it can; checked once, with real sockets."""
    global _why_not
    if disabled:
        return "turned off (--no-splice)"
    if _why_not is False:
        _why_not = check()
    return _why_not  # type: ignore[return-value]


def said() -> None:
    """Log, once at start-up, which path moves the bytes that meet no toxic, and why."""
    why = unavailable()
    if why is None:
        log.info("Bytes that meet no toxic move in the kernel (splice); toxics act in user space")
    else:
        log.info("The relay copies every byte in user space: {why}", why=why)


_refused_said = False


def refused_once(error: OSError) -> None:
    """Log, once in the process, that a socket the start-up check did not foresee refused splice."""
    global _refused_said
    if not _refused_said:
        _refused_said = True
        log.info("A connection's socket refused splice ({why}): its bytes go through user space", why=error)


@implementer(IReadDescriptor, IWriteDescriptor)
class _Watch:
    """One descriptor that the reactor watches for the splice (a duplicate of a socket's)."""

    def __init__(self, fd: int, ready: Any, lost: Any):
        self.fd, self.ready, self.lost = fd, ready, lost

    def fileno(self) -> int:
        return self.fd

    def doRead(self) -> None:
        self.ready()

    def doWrite(self) -> None:
        self.ready()

    def connectionLost(self, reason: Failure) -> None:
        self.lost()

    def logPrefix(self) -> str:
        return "splice"


class Splice:
    """The reader's socket → a pipe → the writer's socket, for one direction (see the module)."""

    def __init__(self, owner: Owner, reactor: Any):
        global live
        self.owner, self.reactor = owner, reactor
        self.in_pipe = 0
        self.moved = 0  # bytes taken from the reader, all told
        self.pushed = 0  # and given to the writer
        self.reading = self.writing = self.running = False
        self.eof = False
        self._pipe = pipes.Pipe()
        self.pipe_read, self.pipe_write = self._pipe.ends
        duplicates: list[int] = []
        try:
            duplicates.append(os.dup(owner.reader.fileno()))
            duplicates.append(os.dup(owner.writer.fileno()))
        except OSError:  # out of descriptors: nothing of this splice is left open
            for fd in duplicates:
                os.close(fd)
            self._pipe.__exit__()
            raise
        self.source = _Watch(duplicates[0], self.pull, self.watch_lost)
        self.sink = _Watch(duplicates[1], self.push, self.watch_lost)
        self.running = True
        with _counting:
            live += 1
        try:
            self.watch_reader(True)
        except BaseException:  # a poller that refuses the watch (ENOSPC): nothing left open
            self.stop()
            raise

    # -- the reactor's events

    def pull(self) -> None:
        """The reader has bytes (or its FIN): into the pipe, then on to the writer. (Not while the
        writer is full: an event of the same poll can come after the watch was stopped.)"""
        if not self.running or not self.reading:
            return
        try:
            moved = os.splice(self.source.fd, self.pipe_write, pipes.PIPE_SIZE, flags=os.SPLICE_F_NONBLOCK)
        except BlockingIOError:
            return
        except OSError as error:
            if error.errno in REFUSED and self.in_pipe == 0 and not self.moved:
                self.stop()  # this socket is not one splice takes: the stages serve, nothing lost
                self.owner.spliced_refused(error)
            else:
                self.failed(error)
            return
        self.moved += moved
        if moved == 0:
            self.eof = True
            self.watch_reader(False)
        self.in_pipe += moved
        self.push()

    def push(self) -> None:
        """Empty the pipe into the writer while it takes bytes; read again once it is empty."""
        while self.running and self.in_pipe:
            try:
                moved = os.splice(self.pipe_read, self.sink.fd, self.in_pipe, flags=os.SPLICE_F_NONBLOCK)
            except BlockingIOError:  # the writer is full: its room, not the reader, is waited for
                self.watch_reader(False)
                self.watch_writer(True)
                return
            except OSError as error:
                if error.errno in REFUSED and not self.pushed:
                    held = self.handed_back()  # the writer's socket refuses: its bytes go by user space
                    self.owner.spliced_refused(error, held)
                else:
                    self.failed(error)
                return
            self.in_pipe -= moved
            self.pushed += moved
        if not self.running:
            return
        self.watch_writer(False)
        if self.eof:
            self.stop()
            self.owner.spliced_eof()
        else:
            self.watch_reader(True)

    def failed(self, error: OSError) -> None:
        self.stop()
        self.owner.spliced_error(error)

    def watch_lost(self) -> None:
        """The reactor dropped a watch: an error or hang-up without data on its socket (a reset
        while the splice waited for the writer's room), or an exception in pull or push. The
        direction hears of it as of a reset, rather than waiting on a splice that is gone."""
        if self.running:
            self.failed(ConnectionResetError("the reactor stopped watching the splice's socket"))

    # -- watching

    def watch_reader(self, on: bool) -> None:
        if on and not self.reading and not self.eof:
            self.reactor.addReader(self.source)
        elif not on and self.reading:
            self.reactor.removeReader(self.source)
        self.reading = on and not self.eof

    def watch_writer(self, on: bool) -> None:
        if on and not self.writing:
            self.reactor.addWriter(self.sink)
        elif not on and self.writing:
            self.reactor.removeWriter(self.sink)
        self.writing = on

    # -- the end

    def stop(self) -> None:
        """Stop watching and close the duplicates and the pipe: before a transport closes its
        socket, so that no duplicate keeps the socket open, nor a ghost in the poller."""
        global live
        if not self.running:
            return
        self.running = False
        with _counting:
            live -= 1
        self.watch_reader(False)
        self.watch_writer(False)
        for watch in (self.source, self.sink):
            os.close(watch.fd)
            watch.fd = -1
        self._pipe.__exit__()

    def handed_back(self) -> bytes:
        """Stop, and what the pipe held (bytes already read from the reader, owed to the writer,
        first); whether the reader's FIN came with them is :attr:`eof`."""
        held = bytearray()
        if self.running:
            while len(held) < self.in_pipe:
                try:
                    chunk = os.read(self.pipe_read, self.in_pipe - len(held))
                except BlockingIOError:
                    break
                if not chunk:
                    break
                held += chunk
            self.stop()
        return bytes(held)
