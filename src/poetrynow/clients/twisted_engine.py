"""The Twisted engine: client 8.0 of Parts 17-18.

One ``get_poetry`` Deferred per address; with ``--xform`` an inlineCallbacks
function fetches and then transforms, keeping the original poem when the
transform fails; a DeferredList stops the reactor when every task is done.

Each run gets a reactor of its own, so the demo and the tests can run the engine
many times in one process (the global reactor cannot be restarted).
"""

from __future__ import annotations

from collections.abc import Sequence

from twisted.internet import defer

from poetrynow.address import Address
from poetrynow.clients import EngineOptions, unexpected
from poetrynow.clients.get_poetry import TransformProxy, describe_failure, expected_failure, get_poetry_at
from poetrynow.clients.task import PoemTask
from poetrynow.events import Event, Sink
from poetrynow.stopping import Interrupted, on_signals


def reactor_class() -> type:
    """epoll's reactor where there is epoll, else poll's."""
    try:
        from twisted.internet.epollreactor import EPollReactor
    except ImportError:  # not Linux
        from twisted.internet.pollreactor import PollReactor

        return PollReactor
    return EPollReactor


def new_reactor():
    """A fresh, uninstalled reactor."""
    return reactor_class()()


def event_loop() -> str:
    return reactor_class().__name__


def run(addresses: Sequence[Address], sink: Sink, options: EngineOptions) -> None:
    reactor = new_reactor()
    # The reactor logs an exception raised by a signal handler and goes on, so a
    # signal stops the reactor instead (closing every connection), and is raised
    # after. What the closing does to the downloads under way is not reported:
    # the command says in one line what the signal cut short.
    caught: list[int] = []

    def report(event: Event) -> None:
        if not caught:
            sink(event)

    proxy = TransformProxy(options.xform, reactor=reactor, timeout=options.timeout) if options.xform else None

    @defer.inlineCallbacks
    def get_transformed_poem(task: PoemTask):
        task.started()
        try:
            poem = yield get_poetry_at(
                task.address,
                reactor,
                options.timeout,
                on_connect=task.connected,
                on_data=task.counted,
                max_bytes=options.max_bytes,
            )
        except Exception as problem:
            if not expected_failure(problem):
                unexpected(problem)
            task.failed(describe_failure(problem))
            return
        if proxy is not None:
            try:
                poem = yield proxy.xform(options.transform, poem)
            except Exception as problem:
                if not expected_failure(problem):
                    unexpected(problem)
                task.transform_failed(options.transform, describe_failure(problem))
            else:
                task.transformed(options.transform)
        task.finished(poem)

    def start():
        tasks = [
            get_transformed_poem(PoemTask(number, address, report, options.clock, options.max_bytes))
            for number, address in enumerate(addresses, 1)
        ]
        done = defer.DeferredList(tasks, consumeErrors=True)
        done.addBoth(lambda _: None if caught else reactor.stop())

    def stop(signum: int) -> None:
        caught.append(signum)
        reactor.callFromThread(reactor.stop)

    reactor.callWhenRunning(start)
    with on_signals(stop):
        reactor.run(installSignalHandlers=False)
    if caught:
        raise Interrupted(caught[0])
