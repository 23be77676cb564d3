"""The threaded model of Part 1's Figure 2: a thread per poem, each one blocking.

Each thread runs the blocking engine's own code (connect, recv until the server
closes, then the transform if asked) and puts what happens on a queue; the main
thread is the only one that touches the sink, so the reporter never sees two
threads at once. The operating system does the interleaving: every thread waits
in its own recv, and whichever has data runs.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence

from poetrynow.address import Address
from poetrynow.clients import EngineOptions, unexpected
from poetrynow.clients.blocking import get_poetry
from poetrynow.clients.task import PoemTask, tasks_for
from poetrynow.events import Sink, describe_error

STACK_SIZE = 256 << 10  # thousands of threads; each needs little stack
DONE = object()


def run(addresses: Sequence[Address], sink: Sink, options: EngineOptions) -> None:
    events: queue.SimpleQueue = queue.SimpleQueue()

    def worker(task: PoemTask) -> None:
        try:
            get_poetry(task, options)
        except Exception as problem:  # a bug must cost one task, not hang the run
            unexpected(problem)
            task.failed(describe_error(problem))
        finally:
            events.put(DONE)

    previous = threading.stack_size(STACK_SIZE)
    try:
        threads = [
            threading.Thread(target=worker, args=(task,), daemon=True, name=f"poem-{task.task}")
            for task in tasks_for(addresses, events.put, options)
        ]
        for thread in threads:
            thread.start()
    finally:
        threading.stack_size(previous)
    running = len(threads)
    while running:
        event = events.get()
        if event is DONE:
            running -= 1
        else:
            sink(event)
