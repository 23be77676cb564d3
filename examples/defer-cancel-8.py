"""defer-cancel-8 (Part 19): once a Deferred has fired, cancel() does not call its canceller."""

from twisted.internet import defer


def canceller(d):
    print("I need to cancel this deferred:", d)


def callback(res):
    print("callback got:", res)


def errback(err):
    print("errback got:", err)


d = defer.Deferred(canceller)
d.addCallbacks(callback, errback)
d.callback("result")
d.cancel()
print("done")
