"""log (Part 16): Twisted's logging, the way twistd sets it up for a server.

Nothing is written until a log observer is started (a message logged before is
dropped); then messages, and errors with their tracebacks, go to it with a
timestamp and a system name. twistd starts the observer for a server.
"""

import sys

from twisted.python import log

log.msg("This is not logged: no logging has started yet.")

log.startLogging(sys.stdout)

log.msg("This is logged to stdout.")

try:
    1 / 0  # noqa: B018 (the point is the exception)
except ZeroDivisionError:
    log.err(None, "This error is logged with its traceback:")
