"""Running an asyncio engine so that a signal stops it at once.

asyncio.Runner cancels every task once when the run is interrupted and waits for
them all. On Python 3.11, ``wait_for`` can swallow that one cancellation when its
read completes at the same moment, and the task then reads its slow server to
the end. :func:`run` cancels again, for up to a second, until every task is done,
and keeps asyncio from printing the tasks the signal stopped as never retrieved.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from poetrynow.address import Address
from poetrynow.clients import READ_SIZE
from poetrynow.clients.connect import Dialled, connect_error, is_connected
from poetrynow.stopping import Interrupted

#: How long a stopped run may take to cancel its tasks.
STOP_WITHIN = 1.0


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when it is installed (the ``speed`` extra), else None (asyncio's own)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def event_loop() -> str:
    """The loop a run is on, for ``--json``'s summary."""
    return "uvloop" if loop_factory() is not None else "asyncio"


def run(
    main: Coroutine[Any, Any, Any], loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
) -> Any:
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.get_loop().set_exception_handler(_quiet_about_stops)
        try:
            return runner.run(main)
        except Interrupted:
            loop = runner.get_loop()
            deadline = time.monotonic() + STOP_WITHIN
            while time.monotonic() < deadline:
                pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
                if not pending:
                    break
                for task in pending:
                    task.cancel()
                try:
                    loop.run_until_complete(asyncio.wait(pending, timeout=0.05))
                except RuntimeError:
                    # uvloop, stopped by the signal raised inside one of its callbacks, still
                    # holds that stop: it ends this first round early. The next round runs.
                    continue
            raise


async def open_stream(
    address: Address, dialled: Dialled
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """asyncio's streams on a socket :func:`~poetrynow.clients.connect.start_all` dialled.

    A connect still under way is waited for first; an address that was not
    dialled is connected the usual way.
    """
    if dialled is None:
        return await asyncio.open_connection(address.host, address.port)
    if isinstance(dialled, OSError):
        raise dialled
    try:
        if not is_connected(dialled):
            loop = asyncio.get_running_loop()
            writable: asyncio.Future[None] = loop.create_future()

            def ready() -> None:
                if not writable.done():
                    writable.set_result(None)

            loop.add_writer(dialled, ready)
            try:
                await writable
            finally:
                loop.remove_writer(dialled)
            problem = connect_error(dialled)
            if problem is not None:
                raise problem
        return await asyncio.open_connection(sock=dialled)
    except BaseException:
        dialled.close()
        raise


async def reads(reader: asyncio.StreamReader, timeout: float | None) -> AsyncIterator[bytes]:
    """Each read from ``reader`` until the end; TimeoutError after ``timeout`` seconds with none.

    The idle timeout is one watchdog timer per download that, when it fires,
    looks at when data last came and sleeps again for the rest, or expires the
    ``asyncio.timeout`` around the reads. ``wait_for`` per read made a task and
    a timer per chunk, and moving the deadline on each read a timer per chunk:
    for ten thousand downloads, a sixth of what a read cost.
    """
    loop = asyncio.get_running_loop()
    last = loop.time()
    async with asyncio.timeout(None) as idle:
        watchdog = None

        def check() -> None:
            nonlocal watchdog
            now = loop.time()
            if now - last >= timeout:  # type: ignore[operator]
                idle.reschedule(now)  # expire now: the read in progress is cancelled
            else:
                watchdog = loop.call_at(last + timeout, check)  # type: ignore[operator]

        if timeout is not None:
            watchdog = loop.call_at(last + timeout, check)
        try:
            while data := await reader.read(READ_SIZE):
                last = loop.time()
                yield data
        finally:
            if watchdog is not None:
                watchdog.cancel()


def _quiet_about_stops(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncio's handler, except for a task the signal stopped ("exception never retrieved")."""
    if isinstance(context.get("exception"), Interrupted):
        return
    loop.default_exception_handler(context)
