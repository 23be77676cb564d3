"""Two poems on two ports (Part 16, exercise 1): ``twistd -n -y examples/twopoems.tac``.

Each poem gets a MultiService of its own, holding its PoetryService and the
TCPServer that serves it, so either pair could be stopped or moved without
touching the other:

    Application "twopoems"
      MultiService "first"    PoetryService + TCPServer
      MultiService "second"   PoetryService + TCPServer

Overrides, as in fastpoetry.tac: TWOPOEMS_PORT_1 / TWOPOEMS_POEM_1 and
TWOPOEMS_PORT_2 / TWOPOEMS_POEM_2, TWOPOEMS_IFACE. With a port of 0 the log's
"PoetryFactory starting on N" lines name the ports, the first poem's first.
"""

import os

from twisted.application import internet, service

from poetrynow.servers.fast.plain import PoetryFactory, PoetryService

iface = os.environ.get("TWOPOEMS_IFACE", "localhost")
poems = [
    ("first", os.environ.get("TWOPOEMS_POEM_1", "kettle"), int(os.environ.get("TWOPOEMS_PORT_1", "10001"))),
    ("second", os.environ.get("TWOPOEMS_POEM_2", "relay"), int(os.environ.get("TWOPOEMS_PORT_2", "10002"))),
]

application = service.Application("twopoems")

for name, poem, port in poems:
    pair = service.MultiService()
    pair.setName(name)
    poetry_service = PoetryService(poem)
    poetry_service.setServiceParent(pair)
    internet.TCPServer(port, PoetryFactory(poetry_service), interface=iface).setServiceParent(pair)
    pair.setServiceParent(application)
