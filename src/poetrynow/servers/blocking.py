"""Part 2's slow poetry server, blocking edition: one client at a time.

While it trickles a poem to one client every other client waits in the listen
queue, which is the point: it is the slow, blocking peer the articles' clients
are measured against. It sends bytes as they lie in the file, so a chunk
boundary can split a UTF-8 character, as a real network would.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from poetrynow.schedule import PoemSchedule

Log = Callable[[str], None]


def serve_client(
    conn,
    poem: bytes,
    schedule: PoemSchedule,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    log: Log = lambda line: None,
) -> int:
    """Send ``poem`` to one connected client on ``schedule``; return bytes sent.

    Chunk ``i`` goes out at ``start + i * delay`` and the connection is closed one
    delay after the last chunk, as in the article. A client that hangs up costs
    only this connection: the error is logged and the server goes on.
    """
    start = clock()
    sent = 0
    try:
        for index, (begin, end) in enumerate(schedule.slices()):
            _sleep_until(start + schedule.due(index), clock, sleep)
            log(f"Sending {end - begin} bytes")
            conn.sendall(poem[begin:end])
            sent = end
        _sleep_until(start + schedule.due(schedule.chunks), clock, sleep)
    except OSError as error:
        log(f"Client hung up after {sent} of {len(poem)} bytes ({error.strerror or error}).")
    finally:
        conn.close()
    return sent


def _sleep_until(deadline: float, clock, sleep) -> None:
    remaining = deadline - clock()
    if remaining > 0:
        sleep(remaining)


def serve_forever(
    listener: socket.socket, poem: bytes, schedule: PoemSchedule, log: Log = lambda line: None
) -> None:
    """Accept clients one after another, forever; each gets the whole poem."""
    while True:
        conn, peer = listener.accept()
        log(f"Somebody at {peer[0]}:{peer[1]} wants poetry!")
        serve_client(conn, poem, schedule, log=log)
