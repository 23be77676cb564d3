"""defer-cancel-3 (Part 19): cancelling a Deferred that has already fired does nothing."""

from twisted.internet import defer


def callback(res):
    print("callback got:", res)


def errback(err):
    print("errback got:", err)


d = defer.Deferred()
d.addCallbacks(callback, errback)
d.callback("result")
d.cancel()
print("done")
