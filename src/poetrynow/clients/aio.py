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


def _quiet_about_stops(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncio's handler, except for a task the signal stopped ("exception never retrieved")."""
    if isinstance(context.get("exception"), Interrupted):
        return
    loop.default_exception_handler(context)
