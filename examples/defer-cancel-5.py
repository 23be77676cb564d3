"""defer-cancel-5 (Part 19): the canceller, given by the code that made the Deferred.

It is called with the Deferred, before the errbacks, and is where the real work
would be aborted.
"""

from twisted.internet import defer


def canceller(d):
    print("I need to cancel this deferred:", d)


def callback(res):
    print("callback got:", res)


def errback(err):
    print("errback got:", err)


d = defer.Deferred(canceller)  # created by lower-level code
d.addCallbacks(callback, errback)  # added by higher-level code
d.cancel()
print("done")
