"""defer-cancel-7 (Part 19): ...or fire it with a result, so the callbacks run after all."""

from twisted.internet import defer


def canceller(d):
    print("I need to cancel this deferred:", d)
    print("Firing the deferred with a result.")
    d.callback("An alternative result")


def callback(res):
    print("callback got:", res)


def errback(err):
    print("errback got:", err)


d = defer.Deferred(canceller)
d.addCallbacks(callback, errback)
d.cancel()
print("done")
