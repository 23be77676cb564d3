"""defer-cancel-10 (Part 19): cancel after two seconds; the poem is still sent at five.

Cancelling a Deferred without a canceller only drops the result: the
operation itself goes on ("Sending poem"), and the callback never runs.
"""

from _timescale import seconds
from twisted.internet.defer import Deferred


def send_poem(d):
    print("Sending poem")
    d.callback("Once upon a midnight dreary")


def get_poem():
    """Return a poem 5 seconds later."""
    from twisted.internet import reactor

    d = Deferred()
    reactor.callLater(seconds(5), send_poem, d)
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
