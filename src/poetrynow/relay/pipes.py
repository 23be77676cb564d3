"""The pipes a splice moves its bytes through: their size, the user's pipe quota, the start-up check.

Apart from :mod:`poetrynow.relay.kernel` (the splice itself) because a reader asking
"how much kernel memory can the relay's pipes take" wants the budget and nothing of the
reactor's events. The budget is shared by every reactor of the process (a test's relay
runs in a thread of its own), so it is counted under a lock.
"""

from __future__ import annotations

import os
import socket
import sys
import threading

_counting = threading.Lock()

#: The pipe's size: as much as one splice moves. Larger pipes mean fewer wake-ups per MiB.
PIPE_SIZE = 1 << 20

#: A pipe's size when the kernel's is kept (64 KiB on Linux): what a pipe past the budget gets.
DEFAULT_PIPE = 1 << 16

#: The bytes the pipes open now hold room for, against :func:`pipe_budget`.
pipe_bytes = 0

_budget: int | bool | None = False  # False: not yet read


def pipe_budget() -> int | None:
    """Half the pipe quota of this user (``fs.pipe-user-pages-soft``), in bytes; None if there is none.

    Past that quota every new pipe of the user, in any process, gets a page or two. The
    splices of a process keep to half of it, so the user's other pipes (a shell's, a test's)
    never pay for the relay's: pipes of :data:`PIPE_SIZE` while they hold a quarter of the
    quota, the kernel's size after that. The quota is per user and this count per process:
    several relays of one user share the other half between them, or shrink each other's
    later pipes to the kernel's size. Root is not held to the quota: no budget then.
    """
    global _budget
    if _budget is False and os.geteuid() == 0:
        _budget = None  # the quota binds unprivileged users only
    if _budget is False:
        try:
            with open("/proc/sys/fs/pipe-user-pages-soft") as quota:
                pages = int(quota.read())
            _budget = pages * os.sysconf("SC_PAGE_SIZE") // 2 if pages > 0 else None
        except (OSError, ValueError):
            _budget = None
    return _budget


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """Two connected TCP sockets on the loopback, as the relay splices (a socketpair is AF_UNIX,
    which a kernel may splice where it refuses TCP); a socketpair only where no loopback listens."""
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        try:
            with socket.socket(family, socket.SOCK_STREAM) as listener:
                listener.bind((host, 0))
                listener.listen(1)
                left = socket.create_connection(listener.getsockname()[:2], timeout=5)
                try:
                    listener.settimeout(5)
                    right, _ = listener.accept()
                except BaseException:
                    left.close()
                    raise
                return left, right
        except OSError:
            continue
    return socket.socketpair()


class Pipe:
    """A pipe of PIPE_SIZE while the budget has room (else the kernel's size), both ends
    non-blocking; a context manager that closes both."""

    def __init__(self) -> None:
        global pipe_bytes
        import fcntl  # (POSIX: the module is imported everywhere, a pipe made on Linux only)

        self.ends = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.closed = False
        budget = pipe_budget()
        self.size = DEFAULT_PIPE
        try:
            if budget is None or pipe_bytes + PIPE_SIZE <= budget // 2:
                fcntl.fcntl(self.ends[1], getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_SIZE)
                self.size = PIPE_SIZE
            self.size = fcntl.fcntl(self.ends[1], getattr(fcntl, "F_GETPIPE_SZ", 1032))
        except OSError:  # over /proc/sys/fs/pipe-max-size, or the quota: the size it has serves
            pass
        with _counting:
            pipe_bytes += self.size

    def __enter__(self) -> tuple[int, int]:
        return self.ends

    def __exit__(self, *exc: object) -> None:
        global pipe_bytes
        if not self.closed:
            self.closed = True
            for end in self.ends:
                os.close(end)
            with _counting:
                pipe_bytes -= self.size


def check() -> str | None:
    """The start-up check: a few bytes through a socket pair, a pipe and back; why not, or None."""
    if not sys.platform.startswith("linux"):
        return f"splice(2) is Linux's, and this is {sys.platform}"
    if not hasattr(os, "splice"):
        return "this Python has no os.splice (3.10+)"
    try:
        with Pipe() as (read_end, write_end):
            left, right = tcp_pair()
            with left, right:
                left.sendall(b"splice")
                moved = os.splice(right.fileno(), write_end, 6, flags=os.SPLICE_F_NONBLOCK)
                back = os.splice(read_end, right.fileno(), moved, flags=os.SPLICE_F_NONBLOCK)
                if (moved, back, left.recv(16)) != (6, 6, b"splice"):
                    return "splice(2) moved the wrong bytes in the start-up check"
    except OSError as error:
        return f"splice(2) failed its start-up check: {error}"
    return None
