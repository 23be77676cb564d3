"""The articles' lines, each made from its event: the words every style chooses from.

Part 2's blocking client says ``Task 1: get poetry from: ...`` and ``Task 1: got
3073 bytes of poetry from ... in 0:00:10.302514``; its select client says ``Task 1:
got 30 bytes of poetry from ...`` per read, ``Task 1 finished`` and ``Task 1: 3073
bytes of poetry``. Both close with ``Got 3 poems in 0:00:23.305161``. The failure
lines are this package's own, one line on stderr each in every style.
"""

from __future__ import annotations

from datetime import timedelta

from poetrynow.events import Failed, Finished, Received, Restarted, Started, TransformFailed


def elapsed(seconds: float) -> str:
    """``0:00:10.126361``, the way the articles print durations."""
    return str(timedelta(seconds=max(seconds, 0.0)))


def started_line(e: Started) -> str:
    return f"Task {e.task}: get poetry from: {e.address}"


def received_line(e: Received) -> str:
    return f"Task {e.task}: got {e.nbytes} bytes of poetry from {e.address}"


def downloaded_line(e: Finished, seconds: float) -> str:
    return f"Task {e.task}: got {len(e.poem)} bytes of poetry from {e.address} in {elapsed(seconds)}"


def finished_line(e: Finished) -> str:
    return f"Task {e.task} finished"


def size_line(e: Finished) -> str:
    return f"Task {e.task}: {len(e.poem)} bytes of poetry"


def failed_line(e: Failed) -> str:
    return f"Task {e.task}: failed to get poetry from {e.address}: {e.reason}"


def transform_failed_line(e: TransformFailed) -> str:
    return f"{e.transform.capitalize()} failed! Task {e.task} keeps the original poem: {e.reason}"


def restarted_line(e: Restarted) -> str:
    return f"Task {e.task} crashed ({e.reason}); restarting it ({e.attempt} of {e.limit})"


def total_line(poems: int, seconds: float) -> str:
    return f"Got {poems} poem{'s' if poems != 1 else ''} in {elapsed(seconds)}"
