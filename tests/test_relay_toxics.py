"""The toxics without sockets: toxiproxy's JSON rules, and each stage's timing under task.Clock."""

from __future__ import annotations

import itertools
import random

from twisted.internet.task import Clock

from poetrynow.relay.kinds import STAGES, fate
from poetrynow.relay.stages import Stage
from poetrynow.relay.toxics import TOXIC_TYPES, ApiError, make_toxic, updated_toxic
from tests.time_limit import SynchronousTestCase


class ToxicJsonTests(SynchronousTestCase):
    def test_defaults_as_toxiproxy_fills_them(self):
        toxic = make_toxic({"type": "latency", "attributes": {"latency": 300}})
        self.assertEqual(
            toxic.as_json(),
            {
                "name": "latency_downstream",
                "type": "latency",
                "stream": "downstream",
                "toxicity": 1.0,
                "attributes": {"latency": 300, "jitter": 0},
            },
        )
        self.assertEqual(make_toxic({"type": "slicer", "stream": "upstream"}).name, "slicer_upstream")

    def test_every_type_has_its_attributes(self):
        from poetrynow.relay.httptoxics import HTTP_STAGES

        self.assertEqual(set(TOXIC_TYPES), set(STAGES) | set(HTTP_STAGES))
        for kind, attributes in TOXIC_TYPES.items():
            self.assertEqual(make_toxic({"type": kind}).attributes, attributes)

    def test_refusals_are_400_with_toxiproxys_words(self):
        bad = [
            ({"type": "nope"}, "invalid toxic type"),
            ({}, "invalid toxic type"),
            ({"type": "latency", "stream": "sideways"}, "stream was invalid"),
            ({"type": "latency", "toxicity": 1.5}, "toxicity"),
            ({"type": "latency", "toxicity": "all"}, "toxicity"),
            ({"type": "latency", "attributes": {"latency": "slow"}}, "latency"),
            ({"type": "latency", "attributes": {"latency": 1.5}}, "latency"),
            ({"type": "latency", "attributes": {"latency": True}}, "latency"),
            ({"type": "latency", "attributes": {"latency": -1}}, "negative"),
            ({"type": "latency", "attributes": []}, "attributes"),
            ([], "bad request body"),
        ]
        for body, words in bad:
            with self.assertRaises(ApiError, msg=body) as caught:
                make_toxic(body)
            self.assertEqual(caught.exception.status, 400)
            self.assertIn(words, caught.exception.message)
            self.assertEqual(caught.exception.as_json()["status"], 400)

    def test_unknown_attributes_are_ignored_as_toxiproxy_does(self):
        self.assertEqual(
            make_toxic({"type": "bandwidth", "attributes": {"rate": 5, "x": 1}}).attributes, {"rate": 5}
        )

    def test_an_update_merges_attributes_and_keeps_name_type_and_stream(self):
        old = make_toxic(
            {"type": "latency", "stream": "upstream", "attributes": {"latency": 300, "jitter": 10}}
        )
        new = updated_toxic(old, {"attributes": {"jitter": 50}, "toxicity": 0, "stream": "downstream"})
        self.assertEqual((new.name, new.type, new.stream), (old.name, "latency", "upstream"))
        self.assertEqual(new.attributes, {"latency": 300, "jitter": 50})
        self.assertEqual(new.toxicity, 0.0)
        self.assertEqual(updated_toxic(old, {}).toxicity, 1.0)


class Hooks:
    """What a stage's direction gives it, on a task.Clock."""

    def __init__(self):
        self.clock = Clock()
        self.closed = self.was_reset = False
        self.fin_closes = False  # a stage's FIN is to close the connection when written
        self.full = False  # the writer, as blocked() tells the stages
        self.moves = 0

    def later(self, seconds, call):
        return self.clock.callLater(seconds, call)

    def now(self):
        return self.clock.seconds()

    def close(self):
        self.closed = True

    def closing(self):
        self.fin_closes = True

    def blocked(self):
        return self.full

    def reset(self):
        self.was_reset = True

    def moved(self):
        self.moves += 1


class Received:
    """The next sink: what came, and when (``None`` for the FIN)."""

    def __init__(self, clock):
        self.clock, self.events = clock, []

    def write(self, data):
        self.events.append((self.clock.seconds(), data))

    def finish(self):
        self.events.append((self.clock.seconds(), None))

    def data(self) -> bytes:
        return b"".join(data for _, data in self.events if data)


class StageCase(SynchronousTestCase):
    def stage(self, kind: str, seed: int = 1, **attributes) -> Stage:
        self.hooks = Hooks()
        self.received = Received(self.hooks.clock)
        stage = STAGES[kind](
            self.hooks, make_toxic({"type": kind, "attributes": attributes}).attributes, random.Random(seed)
        )
        stage.next = self.received
        return stage

    def advance(self, seconds: float, step: float = 0.001) -> None:
        self.hooks.clock.pump([step] * round(seconds / step))

    def closed(self) -> bool:
        """Whether the stage passed on a FIN that closes the connection."""
        return self.hooks.fin_closes and [data for _, data in self.received.events][-1:] == [None]


class LatencyTests(StageCase):
    def test_each_chunk_waits_and_the_fin_follows_the_data(self):
        stage = self.stage("latency", latency=300)
        stage.write(b"one")
        self.advance(0.1)
        stage.write(b"two")
        stage.finish()
        self.assertEqual(stage.held, 6)
        self.advance(0.5)
        self.assertEqual(
            [(round(t, 3), data) for t, data in self.received.events],
            [(0.3, b"one"), (0.4, b"two"), (0.4, None)],
        )
        self.assertEqual(stage.held, 0)
        self.assertEqual(self.hooks.clock.getDelayedCalls(), [])

    def test_jitter_stays_within_its_bounds_and_never_reorders(self):
        stage = self.stage("latency", latency=100, jitter=50)
        for number in range(50):
            stage.write(b"%d," % number)
            self.advance(0.002)
        self.advance(1)
        times = [t for t, _ in self.received.events]
        self.assertEqual(self.received.data(), b"".join(b"%d," % n for n in range(50)))
        self.assertEqual(times, sorted(times))
        for number, t in enumerate(times):
            self.assertLessEqual(t - number * 0.002, 0.151)
        self.assertGreater(len(set(times)), 1)

    def test_one_timer_at_a_time(self):
        stage = self.stage("latency", latency=100)
        for _ in range(100):
            stage.write(b"x")
        self.assertEqual(len(self.hooks.clock.getDelayedCalls()), 1)

    def test_detach_hands_back_what_it_held_in_order(self):
        stage = self.stage("latency", latency=100)
        stage.write(b"a")
        stage.write(b"b")
        stage.finish()
        self.assertEqual(stage.detach(), ([b"a", b"b"], True))
        self.assertEqual(self.hooks.clock.getDelayedCalls(), [])
        self.assertEqual(stage.held, 0)


class BandwidthTests(StageCase):
    def test_at_most_the_rate(self):
        stage = self.stage("bandwidth", rate=1)  # 1000 bytes a second, 100 every 0.1 s
        stage.write(b"x" * 3000)
        stage.finish()
        self.advance(1.0)
        self.assertLessEqual(len(self.received.data()), 1100)
        self.assertGreaterEqual(len(self.received.data()), 900)
        self.advance(2.5)
        self.assertEqual(self.received.data(), b"x" * 3000)
        self.assertEqual(self.received.events[-1][1], None)
        self.assertLess(abs(self.received.events[-1][0] - 3.0), 0.05)
        self.assertGreater(self.hooks.moves, 0)

    def test_no_rate_no_limit(self):
        stage = self.stage("bandwidth", rate=0)
        stage.write(b"x" * 100_000)
        self.assertEqual(len(self.received.data()), 100_000)


class SlowCloseTests(StageCase):
    def test_the_data_at_once_the_fin_late(self):
        stage = self.stage("slow_close", delay=500)
        stage.write(b"poem")
        stage.finish()
        self.assertEqual(self.received.events, [(0, b"poem")])
        self.advance(0.6)
        self.assertEqual(round(self.received.events[-1][0], 3), 0.5)
        self.assertIsNone(self.received.events[-1][1])


class TimeoutTests(StageCase):
    def test_nothing_passes_and_the_connection_closes_at_the_timeout(self):
        stage = self.stage("timeout", timeout=200)
        stage.write(b"lost")
        self.advance(0.19)
        self.assertFalse(self.closed())
        self.advance(0.02)
        self.assertTrue(self.closed())
        self.assertEqual([data for _, data in self.received.events], [None])  # what later toxics hold first
        self.assertEqual(self.hooks.clock.getDelayedCalls(), [])

    def test_zero_holds_the_connection_open_until_the_fin_which_closes_it(self):
        stage = self.stage("timeout", timeout=0)
        stage.write(b"dropped")
        self.advance(100, step=1)
        self.assertEqual(self.received.events, [])
        stage.finish()  # toxiproxy's timeout closes at the reader's EOF
        self.assertTrue(self.closed())
        stage.finish()
        self.assertEqual(len(self.received.events), 1)

    def test_an_update_restarts_the_timer(self):
        stage = self.stage("timeout", timeout=0)
        self.advance(1)
        stage.retune({"timeout": 100})
        self.advance(0.11)
        self.assertTrue(self.closed())


class ResetPeerTests(StageCase):
    def test_the_first_data_starts_the_countdown_to_a_reset(self):
        stage = self.stage("reset_peer", timeout=100)
        self.advance(1)
        self.assertFalse(self.hooks.was_reset)  # no data, no reset
        stage.write(b"dropped")
        self.advance(0.09)
        self.assertFalse(self.hooks.was_reset)
        self.advance(0.02)
        self.assertTrue(self.hooks.was_reset)
        self.assertEqual(self.received.events, [])


class LimitDataTests(StageCase):
    def test_so_many_bytes_then_a_close(self):
        stage = self.stage("limit_data", bytes=10)
        stage.write(b"12345678")
        self.assertFalse(self.closed())
        stage.write(b"90abc")
        self.assertEqual(self.received.data(), b"1234567890")
        self.assertTrue(self.closed())  # a FIN down the chain, which later toxics pass in order
        stage.write(b"more")
        stage.finish()  # the reader's own FIN: no second one
        self.assertEqual([data for _, data in self.received.events], [b"12345678", b"90", None])

    def test_the_count_survives_an_update(self):
        stage = self.stage("limit_data", bytes=10)
        stage.write(b"12345")
        stage.retune({"bytes": 7})
        stage.write(b"67890")
        self.assertEqual(self.received.data(), b"1234567")


class SlicerTests(StageCase):
    def test_slices_of_the_size_asked_the_delay_apart(self):
        stage = self.stage("slicer", average_size=10, size_variation=3, delay=1000)  # 1 ms
        data = bytes(range(256)) * 2
        stage.write(data)
        stage.finish()
        self.advance(1)
        slices = [chunk for _, chunk in self.received.events if chunk is not None]
        self.assertEqual(b"".join(slices), data)
        self.assertTrue(all(7 <= len(piece) <= 13 for piece in slices[:-1]), [len(s) for s in slices])
        times = [t for t, _ in self.received.events]
        gaps = {round(b - a, 4) for a, b in itertools.pairwise(times)}
        self.assertEqual(gaps, {0.001})
        self.assertIsNone(self.received.events[-1][1])

    def test_no_delay_slices_at_once(self):
        stage = self.stage("slicer", average_size=4)
        stage.write(b"abcdefghij")
        self.assertEqual([chunk for _, chunk in self.received.events], [b"abcd", b"efgh", b"ij"])


class ToxicityTests(SynchronousTestCase):
    def test_toxicity_one_always_zero_never(self):
        always = make_toxic({"type": "latency", "toxicity": 1})
        never = make_toxic({"type": "latency", "toxicity": 0})
        chooser = random.Random(3)
        self.assertEqual({fate(always, chooser) for _ in range(100)}, {STAGES["latency"]})
        self.assertEqual({fate(never, chooser) for _ in range(100)}, {Stage})

    def test_a_share_by_the_seed(self):
        half = make_toxic({"type": "latency", "toxicity": 0.5})
        runs = [[fate(half, random.Random(f"7:relay:{n}:latency")) for n in range(40)] for _ in range(2)]
        self.assertEqual(runs[0], runs[1])
        self.assertIn(Stage, runs[0])
        self.assertIn(STAGES["latency"], runs[0])
