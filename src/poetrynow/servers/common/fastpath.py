"""The fast edition of the Twisted servers, and the start-up check that decides whether it runs.

Every Twisted server has a plain edition (:mod:`poetrynow.servers.fast.plain`,
:mod:`~poetrynow.servers.slow.plain`, :mod:`~poetrynow.servers.proxy`): Protocol,
Factory, transports and timers, only Twisted's public names, the articles'
design. The fast edition answers in the accept loop (:mod:`.onewrite`) and
paces bare sockets from one timer (:mod:`.slowport`); to do so it leans on
names neither Twisted nor CPython promise to keep (docs/design.md lists each).
So before a server listens, :func:`missing` checks that each of them is there
and behaves; where one is not, :func:`port_class` gives None, the server runs
the plain edition, and says so in one log line.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import socket
from typing import Any

from twisted.logger import Logger

log = Logger()

#: The fast listening ports, by the name a factory asks for.
PORTS = {
    "one-write": ("poetrynow.servers.fast.onewrite", "OneWritePort"),
    "slow": ("poetrynow.servers.slow.fast", "SlowPort"),
}

#: What the fast ports use of ``twisted.internet.tcp.Port`` beyond its public interface.
PORT_NAMES = ("doRead", "createInternetSocket", "startListening", "logPrefix", "sessionno", "transport")
#: Seconds each step of the check may take.
CHECK_WITHIN = 2.0
#: ``tcp.Server``'s constructor, as the hand-over of a bare connection calls it.
SERVER_PARAMETERS = ["self", "sock", "protocol", "client", "server", "sessionno", "reactor"]


@functools.cache
def missing() -> str | None:
    """Why the fast edition cannot run with this Twisted and Python; None when it can."""
    try:
        from twisted.internet import tcp
    except ImportError as problem:  # no TCP support at all: the plain edition will say so too
        return f"twisted.internet.tcp cannot be imported ({problem})"
    for name in PORT_NAMES:
        if not hasattr(tcp.Port, name):
            return f"twisted.internet.tcp.Port has no {name}"
    if not isinstance(tcp.Port.sessionno, int):
        return "twisted.internet.tcp.Port.sessionno is not a number"
    try:
        parameters = list(inspect.signature(tcp.Port.transport.__init__).parameters.values())
    except (TypeError, ValueError):
        return "the transport class of twisted.internet.tcp.Port has no readable constructor"
    names = [parameter.name for parameter in parameters]
    extra_needed = [p.name for p in parameters[len(SERVER_PARAMETERS) :] if p.default is p.empty]
    if names[: len(SERVER_PARAMETERS)] != SERVER_PARAMETERS or extra_needed:
        return f"twisted.internet.tcp.Port's transport takes ({', '.join(names[1:])})"
    return bare_accept_problem()


def bare_accept_problem(socket_class: Any = socket.socket) -> str | None:
    """One exchange over a real connection accepted by ``socket._accept``: None when it works.

    Every socket has a timeout, so a loopback that drops packets costs the check
    seconds, not the start-up; any failure is a reason to serve plainly.
    """
    if not hasattr(socket_class, "_accept"):
        return "socket.socket has no _accept"
    problem = "no loopback address to check socket._accept on"
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        try:
            with socket_class(family, socket.SOCK_STREAM) as listener:
                listener.settimeout(CHECK_WITHIN)
                listener.bind((host, 0))
                listener.listen(1)
                with socket.create_connection(listener.getsockname()[:2], timeout=CHECK_WITHIN) as client:
                    return _exchange(listener, client)
        except OSError as error:  # no loopback of this family here (or it failed): try the next
            problem = f"socket._accept could not be checked ({error})"
    return problem


def _exchange(listener: Any, client: socket.socket) -> str | None:
    """Accept ``client`` with ``_accept``, write to the descriptor, and see the bytes arrive."""
    accepted = listener._accept()
    fd = accepted[0] if isinstance(accepted, tuple) and accepted else None
    if not isinstance(fd, int):
        return "socket._accept does not give a descriptor"
    try:
        if tuple(accepted[1])[:2] != client.getsockname()[:2]:
            return "socket._accept could not be checked (another process connected first)"
        os.write(fd, b"poem")
    finally:
        os.close(fd)
    if client.recv(16) != b"poem":
        return "a connection accepted by socket._accept does not carry its bytes"
    return None


def port_class(kind: str, plain: bool = False) -> Any:
    """The fast listening port for ``kind`` (``one-write`` or ``slow``); None for the plain edition.

    None when ``plain`` is asked for, and when the check finds the fast edition
    cannot run here, which it logs as one warning line.
    """
    if plain:
        return None
    try:
        why = missing()
    except Exception as problem:  # the check itself failed: a Twisted or Python it did not expect
        why = f"the check failed ({problem!r})"
    if why is None:
        try:
            module_name, name = PORTS[kind]
            module = importlib.import_module(module_name)
            return getattr(module, name)
        except Exception as problem:  # a fast module that cannot load on this Twisted
            why = f"the fast port cannot be loaded ({problem})"
    log.warn("Serving with the plain edition: the fast one cannot run here ({why}).", why=why)
    return None
