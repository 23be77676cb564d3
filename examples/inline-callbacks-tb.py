"""inline-callbacks-tb (Part 17): an inline callback is still called by the reactor.

The traceback printed from inside the generator has reactor.run() near the top,
Twisted's machinery in between, and the generator at the bottom.
"""

import traceback

from _timescale import seconds
from twisted.internet.defer import Deferred, inlineCallbacks


@inlineCallbacks
def my_callbacks():
    from twisted.internet import reactor

    d = Deferred()
    reactor.callLater(seconds(1), d.callback, "a result")
    result = yield d  # we resume here, called back from the reactor's loop
    print("resumed with", result)
    traceback.print_stack()
    reactor.stop()


from twisted.internet import reactor  # noqa: E402

reactor.callWhenRunning(my_callbacks)
reactor.run()
