"""defer-cancel-9 (Part 19): a real asynchronous operation: a poem, five seconds later.

The reactor stops itself after ten seconds, rather than from a callback, so that
the next examples can show what happens after a cancel.
POETRYNOW_TIME_SCALE shortens the seconds (see _timescale.py).
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

    reactor.run()


main()
