"""deferred-list-1 (Part 18): a DeferredList of no Deferreds fires at once, with []."""

from twisted.internet import defer


def got_results(res):
    print("We got:", res)


print("Empty List.")
d = defer.DeferredList([])
print("Adding Callback.")
d.addCallback(got_results)
