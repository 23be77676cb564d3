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

from collections.abc import Sequence
from contextlib import aclosing

from poetrynow.address import Address
from poetrynow.clients import EngineOptions, aio, no_data, unexpected
from poetrynow.clients.actor_runtime import NORMAL, Down, Pid, Process, Runtime
from poetrynow.clients.connect import Dialled, start_all
from poetrynow.clients.errors import PoemTimeout, check_size
from poetrynow.clients.task import PoemTask, tasks_for
from poetrynow.clients.xform import transform_async
from poetrynow.events import Restarted, Sink, describe_error


async def get_poetry(
    me: Process, task: int, address: Address, main: Pid, options: EngineOptions, dialled: Dialled = None
) -> None:
    """A worker process: its socket, its poem, and messages to ``main``; nothing else."""
    clock = options.clock
    reader, writer = await aio.open_stream(address, dialled, options.timeout)
    main.send(("connected", task, clock()))
    packets = bytearray()  # one buffer, not a list of reads (see clients/task.py)
    received = 0
    try:
        try:
            async with aclosing(aio.reads(reader, options.timeout)) as packets_in:
                async for packet in packets_in:
                    began = clock()
                    received += len(packet)
                    check_size(received, options.max_bytes)  # PoemTooLarge crashes the process
                    packets += packet
                    main.send(("got", task, len(packet), clock(), began, repr(me.pid)))
        except TimeoutError:
            raise PoemTimeout(no_data(options.timeout)) from None
    finally:
        writer.close()
    poem = bytes(packets)
    if options.xform is not None:
        # The transform's events travel as messages too: this process owns no sink.
        told = PoemTask(task, address, lambda event: main.send(("event", event)), clock)
        poem = await transform_async(told, poem, options)
    main.send(("poem", task, poem, clock()))


async def collect_poems(
    me: Process, addresses: Sequence[Address], options: EngineOptions, sink: Sink
) -> None:
    """The main process: spawn a monitored worker per address, then receive until all are DOWN."""
    clock = options.clock
    workers: dict[int, tuple[int, int]] = {}  # monitor ref -> (task, restarts so far)
    tasks = {task.task: task for task in tasks_for(addresses, sink, options)}
    poems: dict[int, tuple[bytes, float]] = {}  # in arrival order

    def start(number: int, restarts: int, dialled: Dialled = None) -> None:
        _, ref = me.spawn_monitor(get_poetry, number, addresses[number - 1], me.pid, options, dialled)
        workers[ref] = (number, restarts)
        tasks[number].received = 0

    # Every connection asked of the kernel first (a restart connects anew, the usual way).
    for task, dialled in zip(tasks.values(), start_all(list(tasks.values())), strict=True):
        start(task.task, 0, dialled)

    try:
        while workers:
            message = await me.receive()
            match message:
                case Down(ref=ref, reason=reason):
                    number, restarts = workers.pop(ref)
                    if reason == NORMAL:
                        continue
                    unexpected(reason)
                    why = describe_error(reason)
                    if restarts < options.supervise:
                        sink(
                            Restarted(
                                task=number,
                                address=addresses[number - 1],
                                reason=why,
                                attempt=restarts + 1,
                                limit=options.supervise,
                                t=clock(),
                            )
                        )
                        start(number, restarts + 1)
                    else:
                        tasks[number].failed(why)
                case ("connected", number, t):
                    tasks[number].connected(t)
                case ("got", number, nbytes, t, began, process):
                    tasks[number].counted(nbytes, t, began=began, process=process)
                case ("event", event):
                    sink(event)
                case ("poem", number, poem, t):
                    poems[number] = (poem, t)
    finally:
        # Also when the run is stopped (a signal cancels this process): the poems that
        # had come are reported, so what arrived is not lost with the rest.
        for number in sorted(poems) if options.ordered else poems:
            poem, t = poems[number]
            tasks[number].finished(poem, t)


def run(addresses: Sequence[Address], sink: Sink, options: EngineOptions) -> None:
    Runtime().run(collect_poems, list(addresses), options, sink, loop_factory=aio.loop_factory(options.watch))


event_loop = aio.event_loop
