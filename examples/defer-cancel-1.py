"""defer-cancel-1 (Part 19): cancelling an unfired Deferred fails it with CancelledError.

Nothing handles that failure here, so Twisted reports it as unhandled.
"""

from twisted.internet import defer


def callback(res):
    print("callback got:", res)


d = defer.Deferred()
d.addCallback(callback)
d.cancel()
print("done")
