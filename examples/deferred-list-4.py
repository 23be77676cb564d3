"""deferred-list-4 (Part 18): results come in the list's order, not the order they fired."""

from twisted.internet import defer


def got_results(res):
    print("We got:", res)


print("Two Deferreds.")
d1 = defer.Deferred()
d2 = defer.Deferred()
d = defer.DeferredList([d1, d2])
print("Adding Callback.")
d.addCallback(got_results)
print("Firing d2.")
d2.callback("d2 result")
print("Firing d1.")
d1.callback("d1 result")
