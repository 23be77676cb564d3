"""The slow poetry server (Parts 2 and 16): ``blocking`` serves one client at a time, ``plain``
is the Twisted lesson (every client at once, each on its own schedule), ``fast`` its edition
for ten thousand clients (bare sockets, one timer)."""
