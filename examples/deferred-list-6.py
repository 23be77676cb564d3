"""deferred-list-6 (Part 18): without consumeErrors, d2 is left failed: "Unhandled error".

The DeferredList passes each failure on down its Deferred's chain, so d2 ends
in a failure nobody handled, and Twisted says so when d2 is garbage collected.
"""

from twisted.internet import defer


def got_results(res):
    print("We got:", res)


d1 = defer.Deferred()
d2 = defer.Deferred()
d = defer.DeferredList([d1, d2])
d.addCallback(got_results)
print("Firing d1.")
d1.callback("d1 result")
print("Firing d2 with errback.")
d2.errback(Exception("d2 failure"))
