"""Part 2's slow poetry server, blocking edition: one client at a time.

While it trickles a poem to one client every other client waits in the listen
queue, which is the point: it is the slow, blocking peer the articles' clients
are measured against. It sends bytes as they lie in the file, so a chunk
boundary can split a UTF-8 character, as a real network would.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import time
import traceback
from collections.abc import Callable

from poetrynow.schedule import PoemSchedule
from poetrynow.servers.common.listen import reset_on_close
from poetrynow.stopping import Interrupted

Log = Callable[[str], None]


def serve_client(
    conn,
    poem: bytes,
    schedule: PoemSchedule,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] | None = None,
    log: Log = lambda line: None,
    client_timeout: float | None = None,
) -> int:
    """Send ``poem`` to one connected client on ``schedule``; return bytes sent.

    Chunk ``i`` goes out at ``start + i * delay`` and the connection is closed one
    delay after the last chunk, as in the article. A client that hangs up costs
    only this connection, and no more time than it took to notice: between chunks
    the server waits on the socket itself (``sleep`` replaces that in tests), so a
    close wakes it at once. A client that stops reading is dropped once a send has
    waited ``client_timeout`` seconds, so it cannot hold up everyone else.
    """
    wait = sleep if sleep is not None else Watch(conn)
    if client_timeout is not None:
        conn.settimeout(client_timeout)
    start = clock()
    sent = 0
    try:
        for index, (begin, end) in enumerate(schedule.slices()):
            _sleep_until(start + schedule.due(index), clock, wait)
            log(f"Sending {end - begin} bytes")
            conn.sendall(poem[begin:end])
            sent = end
        _sleep_until(start + schedule.due(schedule.chunks), clock, wait)
    except TimeoutError:
        log(f"Dropped a client after {sent} of {len(poem)} bytes: it read nothing for {client_timeout:g} s.")
    except OSError as error:
        log(f"Client hung up after {sent} of {len(poem)} bytes ({error.strerror or error}).")
    except Exception:
        reset_on_close(conn)  # a bug: the client sees a failure, not a short poem that looks whole
        raise
    except Interrupted as stop:
        # The server is stopping mid-poem: reset the connection, so the client sees a
        # failure and not a clean close of a short poem.
        reset_on_close(conn)
        stop.cut_short = (sent, len(poem))  # type: ignore[attr-defined]
        raise
    finally:
        conn.close()
    return sent


class Watch:
    """Waits between chunks on one client's socket, ending a wait early if the client is found gone.

    What a client sends is read and dropped (a poetry client has nothing to say), a
    little at a time, so a chatty client cannot make the server hold its words.
    Its FIN means it has nothing more to say, not that it has gone (it may have
    half-closed, as ``nc -N`` does): from then on only a broken socket ends a
    wait early (a reset, which a gone client answers the next chunk with).
    """

    def __init__(self, conn):
        self.conn = conn
        self.heard_end = False  # the client's FIN came

    def __call__(self, seconds: float) -> None:
        """Wait ``seconds``, or raise ConnectionResetError as soon as the client is found gone."""
        conn = self.conn
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if self.heard_end:
                _wait_for_break(conn, remaining)
                return
            readable, _, _ = select.select([conn], [], [], remaining)
            if not readable:
                return
            try:
                heard = conn.recv(4096, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                continue
            if not heard:
                self.heard_end = True


def _wait_for_break(conn, seconds: float) -> None:
    """Sleep ``seconds``, waking early (ConnectionResetError) if the socket breaks.

    poll() with no events asked for reports only errors and hang-ups; without
    poll (Windows) this just sleeps, and a gone client is noticed at the next send.
    """
    if not hasattr(select, "poll"):
        time.sleep(seconds)
        return
    poller = select.poll()
    poller.register(conn, 0)
    if poller.poll(seconds * 1000):
        error = conn.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        raise ConnectionResetError(error or errno.ECONNRESET, os.strerror(error or errno.ECONNRESET))


def accept_next(listeners: list[socket.socket]) -> tuple[socket.socket, object]:
    """The next client on any of ``listeners``, blocking until there is one.

    The listener that gave the last client goes to the back of the list, so a
    crowd on one address cannot keep the other's clients waiting for ever.
    """
    if len(listeners) == 1:
        return listeners[0].accept()
    while True:
        ready, _, _ = select.select(listeners, [], [])
        for listener in ready:
            listener.setblocking(False)
            try:
                conn, peer = listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                continue  # gone by the time we asked
            finally:
                listener.setblocking(True)
            conn.setblocking(True)
            listeners.remove(listener)
            listeners.append(listener)
            return conn, peer


def _sleep_until(deadline: float, clock, sleep) -> None:
    remaining = deadline - clock()
    if remaining > 0:
        sleep(remaining)


def serve_forever(
    listeners: list[socket.socket],
    poem: bytes,
    schedule: PoemSchedule,
    log: Log = lambda line: None,
    client_timeout: float | None = None,
) -> None:
    """Accept clients one after another, forever, on any of ``listeners``; each gets the whole poem.

    ``localhost`` may be two listening sockets, ``::1`` and ``127.0.0.1``: the
    server waits on both and takes the next client from whichever has one.
    """
    while True:
        conn, peer = accept_next(listeners)
        # A TCP peer is (host, port); a Unix socket's peer is a path, often empty.
        who = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else (peer or "a Unix socket")
        log(f"Somebody at {who} wants poetry!")
        try:
            serve_client(conn, poem, schedule, log=log, client_timeout=client_timeout)
        except Exception:
            # A bug in one client's handling costs that client (its connection is
            # reset, closed by serve_client on the way out), never the server.
            log(f"A bug while serving {who}; its connection is reset, the server goes on:")
            for line in traceback.format_exc().rstrip().splitlines():
                log(line)
