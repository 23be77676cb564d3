"""defer-cancel-6 (Part 19): a canceller may fire the Deferred itself, with an error of its choice.

Then the errbacks get that error instead of CancelledError.
"""

from twisted.internet import defer


def canceller(d):
    print("I need to cancel this deferred:", d)
    print("Firing the deferred with a different error.")
    d.errback(Exception("I was cancelled!"))


def callback(res):
    print("callback got:", res)


def errback(err):
    print("errback got:", err.getErrorMessage())


d = defer.Deferred(canceller)
d.addCallbacks(callback, errback)
d.cancel()
print("done")
