"""A few Erlang primitives in Python, enough for Part 20's client.

A process is a coroutine with a mailbox, run on one asyncio loop (the runtime's
hidden select loop, as in Erlang). Processes share nothing: they only ``send``
messages and ``receive`` them. ``spawn_monitor`` starts a process and asks for a
:class:`Down` notice when it ends, whatever way it ends: ``reason`` is
``NORMAL`` when its function returned, or the exception that crashed it.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

NORMAL = "normal"


class Pid:
    """A process's address: all another process may do with it is send to it."""

    def __init__(self, number: int):
        self.number = number
        self.mailbox: asyncio.Queue = asyncio.Queue()
        self.monitors: list[tuple[Pid, int]] = []

    def send(self, message: Any) -> None:
        """Erlang's ``Pid ! Message``: never blocks, never fails."""
        self.mailbox.put_nowait(message)

    def __repr__(self) -> str:
        return f"<0.{self.number}.0>"


@dataclass(frozen=True)
class Down:
    """Erlang's ``{'DOWN', Ref, process, Pid, Reason}``."""

    ref: int
    pid: Pid
    reason: Any


class Process:
    """What a process function is given: its own pid, its mailbox and the runtime."""

    def __init__(self, runtime: Runtime, pid: Pid):
        self.runtime, self.pid = runtime, pid

    async def receive(self) -> Any:
        return await self.pid.mailbox.get()

    def spawn_monitor(self, function: Callable[..., Awaitable], *args) -> tuple[Pid, int]:
        """Start ``function(process, *args)`` and be told with a Down message when it ends."""
        return self.runtime.spawn(function, *args, monitor=self.pid)


class Runtime:
    def __init__(self):
        self._numbers = itertools.count(1)
        self._refs = itertools.count(1)
        self._tasks: set[asyncio.Task] = set()

    def spawn(self, function: Callable[..., Awaitable], *args, monitor: Pid | None = None) -> tuple[Pid, int]:
        pid = Pid(next(self._numbers))
        ref = next(self._refs)
        if monitor is not None:
            pid.monitors.append((monitor, ref))
        task = asyncio.get_running_loop().create_task(self._live(pid, function, args))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return pid, ref

    async def _live(self, pid: Pid, function, args) -> None:
        reason: Any = NORMAL
        try:
            await function(Process(self, pid), *args)
        except Exception as crash:  # the process dies; its monitors hear why
            reason = crash
        finally:
            for watcher, ref in pid.monitors:
                watcher.send(Down(ref, pid, reason))

    def run(self, main: Callable[..., Awaitable], *args, loop_factory=None) -> None:
        """Run ``main`` as the first process until it ends (the others with it)."""

        async def first():
            await main(Process(self, Pid(next(self._numbers))), *args)

        from poetrynow.clients import aio

        aio.run(first(), loop_factory)
