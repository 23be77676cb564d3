"""Part 20's Erlang client in Python: a process per poem, messages, monitors.

Each ``get_poetry`` process owns its socket. It does not print or return
anything: it sends the main process a message per chunk and one ``poem``
message at the end, and a failure simply crashes it, as ``{ok, Socket} =
gen_tcp:connect(...)`` does in Erlang. The main process spawned and monitors
every one of them; ``collect_poems`` counts their DOWN notices, however they
went down, and stops when none is left.

The article's exercises are here too: each poem's download time (in the
report), ``ordered`` (command-line order instead of arrival order), a readable
line for a crashed process instead of a crash report, and ``supervise``: the
main process restarts a crashed worker up to N times, as an OTP supervisor
would.
"""

from __future__ import annotations

import asyncio
from typing import Sequence

from poetrynow.address import Address
from poetrynow.clients import EngineOptions
from poetrynow.clients.actor_runtime import NORMAL, Down, Pid, Process, Runtime
from poetrynow.clients.errors import PoemTimeout
from poetrynow.clients.xform import transform_async
from poetrynow.events import Connected, Failed, Finished, Received, Restarted, Started, describe_error

READ_SIZE = 65536


async def get_poetry(me: Process, task: int, address: Address, main: Pid, options: EngineOptions) -> None:
    """A worker process: its socket, its poem, and messages to ``main``; nothing else."""
    clock = options.clock
    reader, writer = await asyncio.wait_for(asyncio.open_connection(address.host, address.port),
                                            options.timeout)
    main.send(("connected", task, clock()))
    packets: list[bytes] = []
    try:
        while True:
            try:
                packet = await asyncio.wait_for(reader.read(READ_SIZE), options.timeout)
            except asyncio.TimeoutError:
                raise PoemTimeout(f"no data for {options.timeout:g} s") from None
            if not packet:
                break
            packets.append(packet)
            main.send(("got", task, len(packet), clock()))
    finally:
        writer.close()
    poem = b"".join(packets)
    if options.xform is not None:
        event, poem = await transform_async(task, address, poem, options)
        main.send(("event", event))
    main.send(("poem", task, poem, clock()))


async def collect_poems(me: Process, addresses: Sequence[Address], options: EngineOptions, sink) -> None:
    """The main process: spawn a monitored worker per address, then receive until all are DOWN."""
    clock = options.clock
    workers: dict[int, tuple[int, int]] = {}  # monitor ref -> (task, restarts so far)
    received: dict[int, int] = {}
    poems: dict[int, Finished] = {}  # in arrival order

    def start(task: int, restarts: int) -> None:
        _, ref = me.spawn_monitor(get_poetry, task, addresses[task - 1], me.pid, options)
        workers[ref] = (task, restarts)
        received[task] = 0

    for task, address in enumerate(addresses, 1):
        sink(Started(task, address, clock()))
        start(task, 0)

    while workers:
        message = await me.receive()
        match message:
            case Down(ref=ref, reason=reason):
                task, restarts = workers.pop(ref)
                if reason == NORMAL:
                    continue
                why = describe_error(reason)
                if restarts < options.supervise:
                    sink(Restarted(task, addresses[task - 1], why, restarts + 1, options.supervise, clock()))
                    start(task, restarts + 1)
                else:
                    sink(Failed(task, addresses[task - 1], why, clock(), received[task]))
            case ("connected", task, t):
                sink(Connected(task, addresses[task - 1], t))
            case ("got", task, nbytes, t):
                received[task] += nbytes
                sink(Received(task, addresses[task - 1], nbytes, t))
            case ("event", event):
                sink(event)
            case ("poem", task, poem, t):
                poems[task] = Finished(task, addresses[task - 1], poem, t)

    for task in (sorted(poems) if options.ordered else poems):
        sink(poems[task])


def run(addresses: Sequence[Address], sink, options: EngineOptions) -> None:
    Runtime().run(collect_poems, list(addresses), options, sink)
