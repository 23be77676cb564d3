"""The plain asyncio competitor of fastpoetry: write the poem, close. Nothing else.

python benchmarks/asyncio_server.py POEM_FILE [--uvloop]
"""

import asyncio
import sys


class PoemProtocol(asyncio.Protocol):
    poem = b""

    def connection_made(self, transport):
        transport.write(self.poem)
        transport.close()


async def serve() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(PoemProtocol, "127.0.0.1", 0, backlog=4096)
    print(f"Serving on port {server.sockets[0].getsockname()[1]}.", flush=True)
    await server.serve_forever()


def main() -> None:
    with open(sys.argv[1], "rb") as f:
        PoemProtocol.poem = f.read()
    if "--uvloop" in sys.argv:
        import uvloop

        uvloop.install()
    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
