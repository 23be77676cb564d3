"""deferred-list-2 (Part 18): it fires when its one Deferred does: [(True, result)]."""

from twisted.internet import defer


def got_results(res):
    print("We got:", res)


print("One Deferred.")
d1 = defer.Deferred()
d = defer.DeferredList([d1])
print("Adding Callback.")
d.addCallback(got_results)
print("Firing d1.")
d1.callback("d1 result")
