"""The Twisted engine: client 8.0 of Parts 17-18.

One ``get_poetry`` Deferred per address; with ``--xform`` an inlineCallbacks
function fetches and then transforms, keeping the original poem when the
transform fails; a DeferredList stops the reactor when every task is done.

Each run gets a reactor of its own, so the demo and the tests can run the engine
many times in one process (the global reactor cannot be restarted); the run
closes what that reactor opened (:mod:`poetrynow.clients.reactors`), or a
hundred runs would hold three hundred descriptors.

A bug in the start-up (anything ``start`` raises before the downloads are under
way) stops the reactor, and the run raises it once the reactor has stopped:
with no errback, the reactor would log it and wait for ever on downloads that
never began.
"""

from __future__ import annotations

from collections.abc import Sequence

from twisted.internet import defer
from twisted.python.failure import Failure

from poetrynow.address import Address
from poetrynow.clients import EngineOptions, unexpected
from poetrynow.clients.connect import Dialled, start_all
from poetrynow.clients.get_poetry import TWISTED_FAILURES, describe_failure, get_poetry_dialled
from poetrynow.clients.reactors import close_reactor, stop_reactor, watching
from poetrynow.clients.task import PoemTask, tasks_for
from poetrynow.clients.transform_proxy import TransformProxy
from poetrynow.clients.watching import watch_reactor
from poetrynow.events import Sink
from poetrynow.stopping import Interrupted, loop_stopped_by_signals


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


def event_loop(options: EngineOptions | None = None) -> str:
    return reactor_class().__name__


def run(addresses: Sequence[Address], sink: Sink, options: EngineOptions) -> None:
    reactor = new_reactor()
    proxy = TransformProxy(options.xform, reactor=reactor, timeout=options.timeout) if options.xform else None

    @defer.inlineCallbacks
    def get_transformed_poem(task: PoemTask, dialled: Dialled):
        try:
            poem = yield get_poetry_dialled(
                dialled,
                task.address,
                reactor,
                options.timeout,
                on_connect=task.connected,
                on_data=task.counted,
                max_bytes=options.max_bytes,
            )
        except Exception as problem:
            unexpected(problem, TWISTED_FAILURES)
            task.failed(describe_failure(problem))
            return
        if proxy is not None:
            asked = options.clock()
            try:
                poem = yield proxy.xform(options.transform, poem)
            except Exception as problem:
                unexpected(problem, TWISTED_FAILURES)
                task.transform_failed(options.transform, describe_failure(problem), began=asked)
            else:
                task.transformed(options.transform, began=asked)
        task.finished(poem)

    def start():
        tasks = tasks_for(addresses, sink, options)
        # Every connection asked of the kernel first, then Twisted's objects for each.
        dialled = start_all(tasks)
        downloads = [get_transformed_poem(task, sock) for task, sock in zip(tasks, dialled, strict=True)]
        done = defer.DeferredList(downloads, consumeErrors=True)
        done.addBoth(lambda _: stop_reactor(reactor))

    broken: list[Failure] = []

    def start_failed(failure: Failure) -> None:
        broken.append(failure)
        stop_reactor(reactor)

    # A signal stops the reactor (closing every connection) and is raised after; what
    # the closing does to the downloads under way, the session leaves out.
    reactor.callWhenRunning(lambda: defer.maybeDeferred(start).addErrback(start_failed))
    unwatch = watch_reactor(reactor, options.watch) if options.watch is not None else None
    try:
        with loop_stopped_by_signals(
            reactor.callFromThread, lambda: stop_reactor(reactor), watching(reactor)
        ) as caught:
            reactor.run(installSignalHandlers=False)
    finally:
        if unwatch is not None:
            unwatch()
        close_reactor(reactor)
    if caught:
        raise Interrupted(caught[0])
    if broken:
        broken[0].raiseException()
