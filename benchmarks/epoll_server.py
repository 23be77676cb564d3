"""A prototype that goes around Twisted altogether: the fast path in a bare epoll loop.

The same work as fastpoetry's OneWritePort (accept a batch, one write, close) in
a loop of a dozen lines with no reactor, no log context, no timers: the least a
Python server can do per poem. Measured beside fastpoetry, it says how much of
what is left is Twisted's loop and how much is Python's.

    python benchmarks/epoll_server.py POEM_FILE
"""

import os
import select
import signal
import socket
import sys


def main() -> None:
    with open(sys.argv[1], "rb") as f:
        poem = f.read()
    listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
    listener.setblocking(False)
    poller = select.epoll()
    poller.register(listener.fileno(), select.EPOLLIN)
    print(f"Serving on port {listener.getsockname()[1]}.", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    accept, write, close = listener._accept, os.write, os.close
    while True:
        poller.poll()
        for _ in range(256):
            try:
                fd, _address = accept()
            except BlockingIOError:
                break
            try:
                write(fd, poem)  # a fresh socket takes a short poem whole
            except OSError:
                pass
            close(fd)


if __name__ == "__main__":
    main()
