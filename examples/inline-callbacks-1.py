"""inline-callbacks-1 (Part 17): a generator as a chain of asynchronous callbacks.

A plain value yielded comes straight back; a yielded Deferred pauses the
generator until it fires, and then the yield gives its result, or raises its
failure as an ordinary exception.
"""

from _timescale import seconds
from twisted.internet.defer import Deferred, inlineCallbacks


@inlineCallbacks
def my_callbacks():
    from twisted.internet import reactor

    print("first callback")
    result = yield 1  # yielded values that aren't deferred come right back

    print("second callback got", result)
    d = Deferred()
    reactor.callLater(seconds(5), d.callback, 2)
    result = yield d  # yielded deferreds will pause the generator

    print("third callback got", result)  # the result of the deferred

    d = Deferred()
    reactor.callLater(seconds(5), d.errback, Exception(3))

    try:
        yield d
    except Exception as e:
        result = e

    print("fourth callback got", repr(result))  # the exception from the deferred

    reactor.stop()


from twisted.internet import reactor  # noqa: E402

reactor.callWhenRunning(my_callbacks)
reactor.run()
