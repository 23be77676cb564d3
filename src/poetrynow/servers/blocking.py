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
from poetrynow.servers.listen import reset_on_close
from poetrynow.stopping import Interrupted

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
    except Interrupted as stop:
        # The server is stopping mid-poem: reset the connection, so the client sees a
        # failure and not a clean close of a short poem.
        reset_on_close(conn)
        stop.cut_short = (sent, len(poem))  # type: ignore[attr-defined]
        raise
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
        # A TCP peer is (host, port); a Unix socket's peer is a path, often empty.
        who = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else (peer or "a Unix socket")
        log(f"Somebody at {who} wants poetry!")
        serve_client(conn, poem, schedule, log=log)
