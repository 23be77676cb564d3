"""inline-callbacks-2 (Part 17): what calling an inlineCallbacks function gives you.

A Deferred that fires once the generator has finished: with its return value,
or, if it raised, with the exception as a Failure. The article returned values
with defer.returnValue; since Python 3.3 a generator may simply ``return`` one,
and today's Twisted deprecates returnValue, so this version returns.
"""

from twisted.internet.defer import inlineCallbacks


@inlineCallbacks
def return_a_value():
    yield 1
    return "the value"


@inlineCallbacks
def raise_an_error():
    yield 1
    raise Exception("the error")


def got_result(result):
    print("callback got:", result)


def got_failure(failure):
    print("errback got:", failure.getErrorMessage())


return_a_value().addCallbacks(got_result, got_failure)
raise_an_error().addCallbacks(got_result, got_failure)
