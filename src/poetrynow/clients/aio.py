"""Running an asyncio engine so that a signal stops it at once, and helpers every one shares.

:func:`run` turns SIGINT and SIGTERM into a cancellation of the main task, from
the loop (never an exception raised wherever the signal lands), cancels every
task until all are done, then raises :class:`~poetrynow.stopping.Interrupted`;
it keeps asyncio from printing the tasks the signal stopped as never retrieved.
:func:`open_stream` and :func:`reads` are the streams and the idle timeout of
the asyncio, actors and lazy engines.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Any

from poetrynow.address import Address, targets
from poetrynow.clients import READ_SIZE, EngineOptions
from poetrynow.clients.connect import Attempts, Dialled, connect_error, dial, is_connected
from poetrynow.clients.watching import LoopWatch, TimedSelector
from poetrynow.stopping import Interrupted, Watch, loop_stopped_by_signals

#: How long a stopped run may take to cancel its tasks.
STOP_WITHIN = 1.0


def loop_factory(watch: LoopWatch | None = None) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when it is installed (the ``speed`` extra), else None (asyncio's own).

    A watched run (``--trace``) is on asyncio's own loop, over a selector that
    times its waits: uvloop waits inside libuv, where Python cannot see it.
    """
    if watch is not None:
        return lambda: asyncio.SelectorEventLoop(TimedSelector(watch))
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def event_loop(options: EngineOptions | None = None) -> str:
    """The loop a run is on, for ``--json``'s summary (a traced run is on asyncio's own)."""
    watched = options is not None and options.watch is not None
    return "uvloop" if not watched and loop_factory() is not None else "asyncio"


def run(
    main: Coroutine[Any, Any, Any], loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
) -> Any:
    """Run ``main`` to the end; on SIGINT or SIGTERM, cancel every task, then raise Interrupted.

    While the loop runs, a signal does not raise where it lands: an exception
    raised in the middle of the loop's own bookkeeping (between a future's result
    and the wake-up of the task waiting on it) can leave a task waiting for ever,
    and the run then hangs as it closes. The signal is noted, and the main task
    cancelled from the loop itself.
    """
    caught: list[int] = []  # the signals that came while the loop ran

    async def guarded() -> Any:
        nonlocal caught
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        assert me is not None
        # call_soon_threadsafe is safe from a signal handler, wherever it lands.
        with loop_stopped_by_signals(loop.call_soon_threadsafe, me.cancel, watching(loop)) as caught:
            return await main

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        loop = runner.get_loop()
        loop.set_exception_handler(_quiet_about_stops)
        try:
            return runner.run(guarded())
        except (asyncio.CancelledError, Interrupted) as stop:
            if isinstance(stop, asyncio.CancelledError) and not caught:
                raise
            signum = caught[0] if caught else stop.signum  # type: ignore[union-attr]
            _cancel_the_rest(loop)
            raise Interrupted(signum) from None


def watching(loop: asyncio.AbstractEventLoop) -> Watch:
    """``loop`` as a :data:`poetrynow.stopping.Watch`: add_reader, and remove_reader to stop."""

    def watch(fd: int, on_readable: Callable[[], None]) -> Callable[[], None]:
        loop.add_reader(fd, on_readable)

        def unwatch() -> None:
            loop.remove_reader(fd)

        return unwatch

    return watch


def _cancel_the_rest(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is still running, again, for up to a second, until every task is done.

    On Python 3.11, ``wait_for`` can swallow one cancellation when its read completes
    at the same moment; the runner's single round of cancelling would then wait on it.
    """
    deadline = time.monotonic() + STOP_WITHIN
    while time.monotonic() < deadline:
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        if not pending:
            return
        for task in pending:
            task.cancel()
        try:
            loop.run_until_complete(asyncio.wait(pending, timeout=0.05))
        except RuntimeError:
            # uvloop, stopped by a signal raised inside one of its callbacks (before the
            # handler above was in place), still holds that stop: the next round runs.
            continue


async def open_stream(
    address: Address, dialled: Dialled, timeout: float | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """asyncio's streams on a socket :func:`~poetrynow.clients.connect.start_all` dialled.

    A connect still under way is waited for first; an address that was not
    dialled (a host name) is connected here, each address it resolves to in turn.
    Each connect attempt, and the lookup, may take ``timeout`` seconds (TimeoutError).
    """
    if isinstance(dialled, OSError):
        raise dialled
    sock = dialled if dialled is not None else dial(address)
    try:
        if sock is None:
            sock = await connect_any(address, timeout)
        elif not is_connected(sock):
            async with asyncio.timeout(timeout):
                await _connected(sock)
        return await asyncio.open_connection(sock=sock)
    except BaseException:
        if sock is not None:
            sock.close()
        raise


async def connect_any(address: Address, timeout: float | None = None) -> socket.socket:
    """A connected socket to a host name: each address it resolves to, in the resolver's order.

    The lookup runs in the loop's executor (uvloop's in libuv's), so a slow
    resolver holds up this download alone. An attempt that takes ``timeout``
    seconds gives way to the next address. A failure names every address tried.
    """
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        infos = await loop.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)
    attempts = Attempts(targets(address, infos))
    while True:
        sock = attempts.dial()  # raises, naming every address, once none is left
        try:
            if not is_connected(sock):
                async with asyncio.timeout(timeout):
                    await _connected(sock)
        except OSError as problem:  # TimeoutError too
            sock.close()
            assert attempts.current is not None
            attempts.failed(attempts.current, problem)
            continue
        except BaseException:
            sock.close()
            raise
        return sock


async def _connected(sock: socket.socket) -> None:
    """Wait until a non-blocking connect has ended; raise why it failed, if it did."""
    loop = asyncio.get_running_loop()
    writable: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not writable.done():
            writable.set_result(None)

    loop.add_writer(sock, ready)
    try:
        await writable
    finally:
        loop.remove_writer(sock)
    problem = connect_error(sock)
    if problem is not None:
        raise problem


async def reads(reader: asyncio.StreamReader, timeout: float | None) -> AsyncGenerator[bytes, None]:
    """Each read from ``reader`` until the end; TimeoutError after a read has waited ``timeout`` seconds.

    The timeout is around each read alone, never around the ``yield``: the time
    the consumer takes with a chunk is not the server's silence, and a
    cancellation must not land in whatever the consumer awaits meanwhile (the
    hazard of PEP 789). So a slow consumer, with the data waiting for it, never
    times out; a server silent for ``timeout`` seconds while a read waits does.

    One watchdog timer per download, not one per read: when it fires, it looks
    at how long the read under way has waited, and either expires that read's
    ``asyncio.timeout`` or sleeps again for the rest; while the consumer holds
    a chunk, it lapses, and the next read sets it again. ``wait_for`` per read
    made a task and a timer per chunk, and moving a deadline on each read a
    timer per chunk: for ten thousand downloads, a sixth of what a read cost.
    Use it inside ``contextlib.aclosing``: a caller that stops reading early
    closes it, and its watchdog with it.
    """
    if timeout is None:
        while data := await reader.read(READ_SIZE):
            yield data
        return
    loop = asyncio.get_running_loop()
    waiting: asyncio.Timeout | None = None  # the timeout of the read under way; None between reads
    began = 0.0  # when that read began
    watchdog: asyncio.TimerHandle | None = None

    def check() -> None:
        nonlocal watchdog
        watchdog = None
        if waiting is None:
            return  # the consumer holds a chunk: the next read sets the watchdog again
        now = loop.time()
        if now - began >= timeout:
            waiting.reschedule(now)  # expire now: the read in progress is cancelled
        else:
            watchdog = loop.call_at(began + timeout, check)

    try:
        while True:
            began = loop.time()
            if watchdog is None:
                watchdog = loop.call_at(began + timeout, check)
            async with asyncio.timeout(None) as waiting:
                data = await reader.read(READ_SIZE)
            waiting = None
            if not data:
                return
            yield data
    finally:
        if watchdog is not None:
            watchdog.cancel()


def _quiet_about_stops(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncio's handler, except for a task the signal stopped ("exception never retrieved")."""
    if isinstance(context.get("exception"), Interrupted):
        return
    loop.default_exception_handler(context)
