"""The Twisted engine: client 8.0 of Parts 17-18.

One ``get_poetry`` Deferred per address; with ``--xform`` an inlineCallbacks
function fetches and then transforms, keeping the original poem when the
transform fails; a DeferredList stops the reactor when every task is done.

Each run gets a reactor of its own, so the demo and the tests can run the engine
many times in one process (the global reactor cannot be restarted).
"""

from __future__ import annotations

from typing import Sequence

from twisted.internet import defer

from poetrynow.address import Address
from poetrynow.clients import EngineOptions
from poetrynow.clients.get_poetry import TransformProxy, describe_failure, get_poetry
from poetrynow.events import Connected, Failed, Finished, Received, Started, TransformFailed, Transformed


def new_reactor():
    """A fresh, uninstalled reactor: epoll where there is epoll."""
    try:
        from twisted.internet.epollreactor import EPollReactor as Reactor
    except ImportError:  # not Linux
        from twisted.internet.pollreactor import PollReactor as Reactor
    return Reactor()


def run(addresses: Sequence[Address], sink, options: EngineOptions) -> None:
    reactor = new_reactor()
    clock = options.clock
    proxy = TransformProxy(options.xform.host, options.xform.port, reactor) if options.xform else None

    @defer.inlineCallbacks
    def get_transformed_poem(task: int, address: Address):
        received = 0

        def on_data(nbytes: int):
            nonlocal received
            received += nbytes
            sink(Received(task, address, nbytes, clock()))

        sink(Started(task, address, clock()))
        try:
            poem = yield get_poetry(address.host, address.port, reactor, options.timeout,
                                    on_connect=lambda: sink(Connected(task, address, clock())),
                                    on_data=on_data)
        except Exception as problem:
            sink(Failed(task, address, describe_failure(problem), clock(), received))
            return
        if proxy is not None:
            try:
                poem = yield proxy.xform(options.transform, poem)
            except Exception as problem:
                sink(TransformFailed(task, address, options.transform, describe_failure(problem), clock()))
            else:
                sink(Transformed(task, address, options.transform, clock()))
        sink(Finished(task, address, poem, clock()))

    def start():
        tasks = [get_transformed_poem(task, address) for task, address in enumerate(addresses, 1)]
        done = defer.DeferredList(tasks, consumeErrors=True)
        done.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(start)
    reactor.run(installSignalHandlers=False)
