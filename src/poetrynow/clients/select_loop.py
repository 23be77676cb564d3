"""Part 2's asynchronous client: every server at once, one loop, no threads.

Sockets are non-blocking and connect in parallel; one loop waits on all of them
(with :mod:`selectors`, epoll on Linux, so it is not capped at select()'s 1024
descriptors) and reads from each whatever is there, until it would block. The run
takes as long as the slowest server: Figure 3 of Part 1.
"""

from __future__ import annotations

import selectors
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from poetrynow.address import Address, resolve
from poetrynow.clients import READ_SIZE, EngineOptions, no_data
from poetrynow.clients.connect import Attempts, Dialled, connect_error, start_all
from poetrynow.clients.task import PoemTask, tasks_for
from poetrynow.clients.watching import TimedSelector
from poetrynow.events import Sink, describe_error

READS_PER_PASS = 16


@dataclass
class Download:
    """One task's socket and state between trips round the loop."""

    task: PoemTask
    sock: socket.socket
    last_activity: float
    connected: bool = False
    #: For a host name: the addresses it resolved to, tried in turn.
    attempts: Attempts | None = None


class SelectLoop:
    """The loop: every download registered with one selector until it ends."""

    def __init__(self, options: EngineOptions):
        self.options = options
        # Watched for a trace (--trace): the same selector, its waits timed.
        self.selector = selectors.DefaultSelector() if options.watch is None else TimedSelector(options.watch)
        self.resolved: dict = {}
        #: When a download may next have been idle too long; no sweep before then.
        self.next_sweep = float("-inf")

    def start(self, task: PoemTask, dialled: Dialled) -> None:
        """Watch a connection :func:`~poetrynow.clients.connect.dial` started (or connect it now)."""
        attempts = None
        try:
            if isinstance(dialled, OSError):
                raise dialled
            if dialled is not None:
                sock = dialled
            else:
                attempts = Attempts(self._resolve(task.address))
                sock = attempts.dial()
        except OSError as error:
            task.failed(describe_error(error))
            return
        download = Download(task, sock, self.options.clock(), attempts=attempts)
        self.selector.register(sock, selectors.EVENT_WRITE, download)

    def _resolve(self, address: Address) -> list[Address]:
        """The addresses a name stands for, looked up once for the run.

        Ten thousand downloads from one server look it up once. The lookup blocks
        the loop, as the articles' clients do theirs; a name from the hosts file,
        as ``localhost`` is, takes microseconds.
        """
        key = (address.host, address.port)
        found = self.resolved.get(key)
        if found is None:
            found = self.resolved[key] = resolve(address)
        return found

    def drop(self, download: Download) -> None:
        self.selector.unregister(download.sock)
        download.sock.close()

    def run(self, tasks: Sequence[PoemTask]) -> None:
        clock = self.options.clock
        try:
            # Every connection asked of the kernel first: a server's schedule starts when it accepts.
            for task, dialled in zip(tasks, start_all(tasks), strict=True):
                self.start(task, dialled)
            while self.selector.get_map():
                for key, _ in self.selector.select(self._wait()):
                    download: Download = key.data
                    download.last_activity = clock()
                    if download.connected:
                        self._read(download)
                    else:
                        self._connected(download)
                if self.options.timeout is not None:
                    self._expire()
        finally:
            for key in list(self.selector.get_map().values()):
                key.fileobj.close()  # type: ignore[union-attr]
            self.selector.close()

    def _connected(self, download: Download) -> None:
        problem = connect_error(download.sock)
        if problem is not None:
            self.drop(download)
            attempts = download.attempts
            if attempts is not None and attempts.current is not None:
                attempts.failed(attempts.current, problem)
                problem = self._try_next(download, attempts)
            if problem is not None:
                download.task.failed(describe_error(problem))
            return
        download.connected = True
        self.selector.modify(download.sock, selectors.EVENT_READ, download)
        download.task.connected()

    def _try_next(self, download: Download, attempts: Attempts) -> OSError | None:
        """Dial the next address a name resolved to; the error once none is left."""
        try:
            download.sock = attempts.dial()
        except OSError as error:
            return error
        self.selector.register(download.sock, selectors.EVENT_WRITE, download)
        return None

    def _read(self, download: Download) -> None:
        """Read what is there without blocking; report it as one batch, and the end if it came."""
        task = download.task
        got: list[bytes] = []
        closed = False
        try:
            try:
                # At most READS_PER_PASS reads, then the other sockets' turn: a server that
                # sends faster than we read must neither starve them nor fill our memory.
                for _ in range(READS_PER_PASS):
                    data = download.sock.recv(READ_SIZE)
                    if not data:
                        closed = True
                        break
                    got.append(data)
            except (BlockingIOError, InterruptedError):
                pass  # all there was, for now
            if got:
                # The work began when select said this socket could be read.
                task.got(b"".join(got) if len(got) > 1 else got[0], began=download.last_activity)
        except OSError as error:  # a reset, or PoemTooLarge
            self.drop(download)
            task.failed(describe_error(error))
            return
        if closed:
            self.drop(download)
            task.finished()

    def _wait(self) -> float | None:
        """How long select may block: until the next sweep for idle downloads, or forever."""
        if self.options.timeout is None:
            return None
        return max(0.0, self.next_sweep - self.options.clock())

    def _expire(self) -> None:
        """Fail the downloads idle for the timeout; at most once per earliest possible deadline.

        A sweep looks at every download, so it runs only when one of them could
        have expired, not on every pass: with ten thousand downloads, a sweep per
        pass cost more than the reads.
        """
        timeout = self.options.timeout
        now = self.options.clock()
        if now < self.next_sweep or timeout is None:
            return
        earliest = now + timeout
        for key in list(self.selector.get_map().values()):
            download: Download = key.data
            if now - download.last_activity >= timeout:
                self.drop(download)
                attempts = download.attempts
                if download.connected or attempts is None or attempts.current is None:
                    download.task.failed(no_data(timeout))
                    continue
                # A connect that took the timeout gives way to the name's next address.
                attempts.failed(attempts.current, TimeoutError(), "timed out")
                download.last_activity = now
                problem = self._try_next(download, attempts)
                if problem is not None:
                    download.task.failed(describe_error(problem))
            else:
                earliest = min(earliest, download.last_activity + timeout)
        self.next_sweep = earliest


def run(addresses: Sequence[Address], sink: Sink, options: EngineOptions) -> None:
    SelectLoop(options).run(tasks_for(addresses, sink, options))
