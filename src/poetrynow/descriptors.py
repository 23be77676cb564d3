"""Room for thousands of descriptors, made before the first burst of connections.

Two things stand between a process and ten thousand sockets. The first is the
soft open-files limit, which :func:`raise_fd_limit` lifts to the hard one.

The second is the kernel's table of the process's descriptors, which starts
small and doubles each time it is full. In a process of one thread a doubling
is a copy. In a process with a second thread alive (a thread pool's, a
resolver's, the transform server's workers' helpers), Linux must wait for
every CPU to leave the old table before it frees it, an RCU grace period, and
the ``accept`` or ``socket`` call that needed the room waits with it: 10-25 ms
a doubling, measured with ``strace -T -e accept4``. A cold server in a burst
of 10,000 connects passes through six doublings on its way to 16,384, and
while it waits the kernel's listen queue overflows: thousands of clients
wait a second or three for a SYN to be sent again (docs/benchmarks.md, "A
cold burst"). A warm server has its table already, which is why only the
first wave after a start showed it.

So the table is made its full size at start-up, while the process still has
one thread: one descriptor is duplicated to the highest number the process
will need, then closed. The table never shrinks, and the burst finds its room.
Other systems grow their tables without such a wait; there the step is
harmless.
"""

from __future__ import annotations

import fcntl
import os
import resource

#: The most descriptors a table is made for in advance: 8 bytes of the kernel's memory
#: each (512 KiB), enough for the tens of thousands of connections the benchmarks open.
#: A process that goes past it grows its table as before, a doubling at a time.
PRESIZE_AT_MOST = 65536


def raise_fd_limit() -> int:
    """Lift the soft open-files limit to the hard one and make the table that big; returns the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    presize_descriptor_table(soft)
    return soft


def presize_descriptor_table(limit: int) -> int:
    """Grow the kernel's descriptor table to hold ``limit`` (at most PRESIZE_AT_MOST); returns its size.

    ``F_DUPFD`` takes the lowest free number at or above the one asked for, so no
    descriptor in use is ever replaced; the duplicate is closed at once. Where the
    system refuses (a limit lower than asked), the table is left to grow as it would.
    """
    if limit == resource.RLIM_INFINITY or limit <= 0:
        limit = PRESIZE_AT_MOST
    highest = min(limit, PRESIZE_AT_MOST) - 1
    try:
        anchor = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        duplicate = fcntl.fcntl(anchor, getattr(fcntl, "F_DUPFD_CLOEXEC", fcntl.F_DUPFD), highest)
    except (OSError, ValueError):
        return 0
    finally:
        os.close(anchor)
    os.close(duplicate)
    return highest + 1
