"""The Erlang primitives Part 20's client is built on: processes, mailboxes, monitors."""

from __future__ import annotations

from tests.time_limit import SynchronousTestCase


class ActorRuntimeTests(SynchronousTestCase):
    def test_down_notices_carry_how_each_process_ended(self):
        from poetrynow.clients.actor_runtime import NORMAL, Down, Runtime

        seen: list = []

        async def fine(me):
            return None

        async def crash(me):
            raise ValueError("badmatch")

        async def echo(me, main):
            main.send(("hello", await me.receive()))

        async def main(me):
            pids = {}
            for function in (fine, crash):
                pid, ref = me.spawn_monitor(function)
                pids[ref] = function.__name__
            pid, ref = me.spawn_monitor(echo, me.pid)
            pids[ref] = "echo"
            pid.send("poem")
            while pids:
                message = await me.receive()
                if isinstance(message, Down):
                    seen.append((pids.pop(message.ref), message.reason))
                else:
                    seen.append(message)

        Runtime().run(main)
        self.assertEqual(
            sorted(map(str, seen)),
            sorted(
                map(
                    str,
                    [
                        ("fine", NORMAL),
                        ("crash", ValueError("badmatch")),
                        ("hello", "poem"),
                        ("echo", NORMAL),
                    ],
                )
            ),
        )
        self.assertLess(seen.index(("hello", "poem")), [s[0] for s in seen].index("echo"))
