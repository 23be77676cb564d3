"""Part 2's blocking client: one poem after another, each read to the end.

Every ``recv`` blocks until the server sends more, so the run takes the sum of
the servers' schedules: Figure 1 of Part 1, in text.
"""

from __future__ import annotations

from collections.abc import Sequence

from poetrynow.address import Address
from poetrynow.clients import READ_SIZE, EngineOptions, read_failure
from poetrynow.clients.connect import open_blocking
from poetrynow.clients.task import PoemTask, tasks_for
from poetrynow.clients.watching import timed_recv
from poetrynow.clients.xform import transform_blocking
from poetrynow.events import Sink, describe_error


def get_poetry(task: PoemTask, options: EngineOptions) -> None:
    """Download one poem, blocking, and report what happens on the way.

    The threads engine runs this same function on a thread per poem; with
    ``options.xform`` the poem then goes through the transform server.
    """
    task.started()
    try:
        sock = open_blocking(task.address, options.timeout)
    except OSError as error:
        task.failed(describe_error(error))
        return
    task.connected()
    with sock:
        try:
            while data := timed_recv(sock, READ_SIZE, options.watch):
                task.got(data)
        except OSError as error:  # TimeoutError too: the socket's timeout is --timeout
            task.failed(read_failure(error, options.timeout))
            return
    poem = task.poem
    if options.xform is not None:
        poem = transform_blocking(task, poem, options)
    task.finished(poem)


def run(addresses: Sequence[Address], sink: Sink, options: EngineOptions) -> None:
    for task in tasks_for(addresses, sink, options):
        get_poetry(task, options)
