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
from collections.abc import Callable, Coroutine
from typing import Any

from poetrynow.address import Address
from poetrynow.clients.connect import Dialled, connect_error, is_connected
from poetrynow.stopping import Interrupted

#: How long a stopped run may take to cancel its tasks.
STOP_WITHIN = 1.0


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
                loop.run_until_complete(asyncio.wait(pending, timeout=0.05))
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


def _quiet_about_stops(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncio's handler, except for a task the signal stopped ("exception never retrieved")."""
    if isinstance(context.get("exception"), Interrupted):
        return
    loop.default_exception_handler(context)
