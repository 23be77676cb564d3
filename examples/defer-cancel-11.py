"""defer-cancel-11 (Part 19): a canceller that cancels the delayed call: really cancelled.

"Sending poem" never appears: cancelling the Deferred aborted the operation.
"""

from _timescale import seconds
from twisted.internet.defer import Deferred


def send_poem(d):
    print("Sending poem")
    d.callback("Once upon a midnight dreary")


def get_poem():
    """Return a poem 5 seconds later."""

    def canceler(d):
        # They don't want the poem any more, so cancel the delayed call.
        delayed_call.cancel()
        # The choices here: do nothing (the errbacks get CancelledError), or fire
        # the Deferred with another error, or with an alternative result.

    d = Deferred(canceler)

    from twisted.internet import reactor

    delayed_call = reactor.callLater(seconds(5), send_poem, d)

    return d


def got_poem(poem):
    print("I got a poem:", poem)


def poem_error(err):
    print("get_poem failed:", err)


def main():
    from twisted.internet import reactor

    reactor.callLater(seconds(10), reactor.stop)  # stop the reactor in 10 seconds

    d = get_poem()
    d.addCallbacks(got_poem, poem_error)

    reactor.callLater(seconds(2), d.cancel)  # cancel after 2 seconds

    reactor.run()


main()
