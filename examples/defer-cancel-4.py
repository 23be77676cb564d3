"""defer-cancel-4 (Part 19): firing a cancelled Deferred is quietly ignored.

Cancelling says "I don't want the result any more"; lower-level code that fires
the Deferred anyway (as code older than cancellation does) must not blow up.
"""

from twisted.internet import defer


def callback(res):
    print("callback got:", res)


def errback(err):
    print("errback got:", err)


d = defer.Deferred()
d.addCallbacks(callback, errback)
d.cancel()
d.callback("result")
print("done")
