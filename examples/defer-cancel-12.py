"""defer-cancel-12 (Part 19): cancelling an outer Deferred that waits on an inner one.

The outer Deferred has fired but is paused on the inner Deferred its callback
returned; cancelling it cancels the inner one (whose canceller runs), and the
outer errback gets the inner CancelledError. The outer canceller never runs.
"""

from twisted.internet import defer


def cancel_outer(d):
    print("outer cancel callback.")


def cancel_inner(d):
    print("inner cancel callback.")


def first_outer_callback(res):
    print("first outer callback, returning inner deferred")
    return inner_d


def second_outer_callback(res):
    print("second outer callback got:", res)


def outer_errback(err):
    print("outer errback got:", err)


outer_d = defer.Deferred(cancel_outer)
inner_d = defer.Deferred(cancel_inner)

outer_d.addCallback(first_outer_callback)
outer_d.addCallbacks(second_outer_callback, outer_errback)

outer_d.callback("result")

# At this point the outer deferred has fired, but is paused on the inner deferred.

print("canceling outer deferred.")
outer_d.cancel()

print("done")
