"""deferred-list-7 (Part 18): handling d2's failure with an errback of our own instead.

Without consumeErrors the failure goes on down d2's chain, where our errback
takes it: no "Unhandled error" this time.
"""

from twisted.internet import defer


def got_results(res):
    print("We got:", res)


def handle_d2_failure(failure):
    print("d2 errback got:", failure.getErrorMessage())


d1 = defer.Deferred()
d2 = defer.Deferred()
d = defer.DeferredList([d1, d2])
d.addCallback(got_results)
d2.addErrback(handle_d2_failure)
print("Firing d1.")
d1.callback("d1 result")
print("Firing d2 with errback.")
d2.errback(Exception("d2 failure"))
