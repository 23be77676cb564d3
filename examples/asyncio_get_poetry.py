"""get_poetry from asyncio code: a Twisted Deferred awaited as an asyncio Future.

Runs Twisted on top of the asyncio loop (AsyncioSelectorReactor), starts a fast
poetry server in-process, and downloads its poem from a plain ``async def``
with ``Deferred.asFuture``. With an address argument it downloads from that
server instead:

    python examples/asyncio_get_poetry.py [[host:]port]
"""

import asyncio
import sys

from twisted.internet import asyncioreactor

asyncioreactor.install(asyncio.new_event_loop())

from twisted.internet import reactor  # noqa: E402  (after the reactor is installed)

from poetrynow.address import parse_address  # noqa: E402
from poetrynow.clients.get_poetry import describe_failure, get_poetry  # noqa: E402
from poetrynow.servers.fast.plain import PoetryFactory, PoetryService  # noqa: E402


async def fetch(host: str, port: int) -> bytes:
    loop = asyncio.get_running_loop()
    return await get_poetry(host, port).asFuture(loop)


def main() -> int:
    if len(sys.argv) > 1:
        address = parse_address(sys.argv[1])
        host, port = address.host, address.port
    else:
        service = PoetryService("caffe")
        service.startService()
        host, port = (
            "127.0.0.1",
            reactor.listenTCP(0, PoetryFactory(service), interface="127.0.0.1").getHost().port,
        )
    loop = reactor._asyncioEventloop
    task = loop.create_task(fetch(host, port))
    task.add_done_callback(lambda _: reactor.stop())
    reactor.run()
    try:
        poem = task.result()
    except Exception as problem:
        print(f"asyncio_get_poetry: error: {describe_failure(problem)}", file=sys.stderr)
        return 1
    print(f"asyncio got {len(poem)} bytes of poetry from {host}:{port}")
    print(poem.decode("utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
