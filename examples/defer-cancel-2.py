"""defer-cancel-2 (Part 19): an errback catches the CancelledError like any failure."""

from twisted.internet import defer


def callback(res):
    print("callback got:", res)


def errback(err):
    print("errback got:", err)


d = defer.Deferred()
d.addCallbacks(callback, errback)
d.cancel()
print("done")
