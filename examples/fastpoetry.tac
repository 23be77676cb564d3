"""FastPoetry 2.0 as a deployment (Part 16): ``twistd -n -y examples/fastpoetry.tac``.

A tac file only builds the application; twistd runs it, as a daemon unless
given ``-n``. This one serves one poem on one port. The tree is the article's:

    Application "fastpoetry"
      MultiService
        PoetryService   holds the poem, read in startService
        TCPServer       listens with a PoetryFactory built on that service

The settings below are the deployment. Environment variables may override them,
which is how the tests run it on a free port: FASTPOETRY_PORT (0 picks a free
port; the log line "PoetryFactory starting on N" names it), FASTPOETRY_IFACE,
FASTPOETRY_POEM (a bundled poem's name or a file path).
"""

import os

from twisted.application import internet, service

from poetrynow.servers.fast.plain import PoetryFactory, PoetryService

port = int(os.environ.get("FASTPOETRY_PORT", "10000"))
iface = os.environ.get("FASTPOETRY_IFACE", "localhost")
poem = os.environ.get("FASTPOETRY_POEM", "lighthouse")

top_service = service.MultiService()

poetry_service = PoetryService(poem)
poetry_service.setServiceParent(top_service)

factory = PoetryFactory(poetry_service)
tcp_service = internet.TCPServer(port, factory, interface=iface)
tcp_service.setServiceParent(top_service)

# twistd looks for this name.
application = service.Application("fastpoetry")
top_service.setServiceParent(application)
