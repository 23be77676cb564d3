"""The blocking server's pacing, driven by a fake clock: no test here sleeps."""

from poetrynow.schedule import PoemSchedule, ideal_total
from poetrynow.servers.slow.blocking import serve_client
from tests.time_limit import SynchronousTestCase


class FakeClock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        assert seconds >= 0
        self.now += seconds


class FakeConnection:
    def __init__(self, clock, hang_up_after=None):
        self.clock = clock
        self.sent = []
        self.closed_at = None
        self.hang_up_after = hang_up_after

    def sendall(self, data):
        if self.hang_up_after is not None and len(self.sent) >= self.hang_up_after:
            raise BrokenPipeError(32, "Broken pipe")
        self.sent.append((round(self.clock() - 1000.0, 9), data))

    def close(self):
        self.closed_at = round(self.clock() - 1000.0, 9)


class PoemScheduleTests(SynchronousTestCase):
    def test_article_figures(self):
        # Part 2: 3003 bytes at 30 a chunk take about 10.1 s; 653 at 10 about 6.6 s.
        self.assertAlmostEqual(PoemSchedule(3003, 30, 0.1).duration, 10.1)
        self.assertAlmostEqual(PoemSchedule(653, 10, 0.1).duration, 6.6)

    def test_slices_cover_the_poem(self):
        self.assertEqual(list(PoemSchedule(25, 10).slices()), [(0, 10), (10, 20), (20, 25)])

    def test_empty_poem_closes_at_once(self):
        schedule = PoemSchedule(0, 10, 0.1)
        self.assertEqual(schedule.chunks, 0)
        self.assertEqual(schedule.duration, 0)

    def test_rejects_nonsense(self):
        self.assertRaises(ValueError, PoemSchedule, 10, 0)
        self.assertRaises(ValueError, PoemSchedule, 10, 1, -1)

    def test_ideal_totals(self):
        schedules = [PoemSchedule(3003, 30), PoemSchedule(615), PoemSchedule(653)]
        self.assertAlmostEqual(ideal_total(schedules, concurrent=False), 10.1 + 6.2 + 6.6)
        self.assertAlmostEqual(ideal_total(schedules, concurrent=True), 10.1)
        self.assertEqual(ideal_total([], concurrent=True), 0.0)

    def test_an_ideal_with_a_transform_a_poem(self):
        three = [PoemSchedule(100, 10, 0.1)] * 3  # each whole at 1.0 s
        self.assertAlmostEqual(ideal_total(three, True, 0.5), 1.5)  # waits: all at once
        self.assertAlmostEqual(ideal_total(three, False, 0.5), 4.5)
        self.assertAlmostEqual(ideal_total(three, True, 0.5, cores=2), 2.0)  # CPU work: the third waits
        self.assertAlmostEqual(ideal_total(three, True, 0.5, cores=3), 1.5)
        apart = [PoemSchedule(10, 10, 0.1), PoemSchedule(100, 10, 0.1)]  # whole at 0.1 s and 1.0 s
        self.assertAlmostEqual(ideal_total(apart, True, 0.5, cores=1), 1.5)  # the first was done by then


class ServeClientTests(SynchronousTestCase):
    def test_chunks_go_out_on_schedule_then_close_one_delay_later(self):
        clock = FakeClock()
        conn = FakeConnection(clock)
        sent = serve_client(
            conn, b"abcdefghijklmnopqrstuvw", PoemSchedule(23, 10, 0.5), clock=clock, sleep=clock.sleep
        )
        self.assertEqual(conn.sent, [(0.0, b"abcdefghij"), (0.5, b"klmnopqrst"), (1.0, b"uvw")])
        self.assertEqual(conn.closed_at, 1.5)
        self.assertEqual(sent, 23)

    def test_schedule_does_not_drift_when_sends_are_slow(self):
        clock = FakeClock()

        class SlowConnection(FakeConnection):
            def sendall(self, data):
                super().sendall(data)
                clock.now += 0.03  # each send costs time; the next chunk is still due on time

        conn = SlowConnection(clock)
        serve_client(conn, b"x" * 40, PoemSchedule(40, 10, 0.1), clock=clock, sleep=clock.sleep)
        self.assertEqual([t for t, _ in conn.sent], [0.0, 0.1, 0.2, 0.3])
        self.assertEqual(conn.closed_at, 0.4)

    def test_bytes_are_sent_as_they_are_even_mid_character(self):
        clock = FakeClock()
        conn = FakeConnection(clock)
        poem = "café".encode()
        serve_client(conn, poem, PoemSchedule(len(poem), 4, 0.1), clock=clock, sleep=clock.sleep)
        self.assertEqual([data for _, data in conn.sent], [b"caf\xc3", b"\xa9"])

    def test_client_hanging_up_costs_only_that_connection(self):
        clock = FakeClock()
        conn = FakeConnection(clock, hang_up_after=2)
        log = []
        sent = serve_client(
            conn, b"x" * 50, PoemSchedule(50, 10, 0.1), clock=clock, sleep=clock.sleep, log=log.append
        )
        self.assertEqual(sent, 20)
        self.assertEqual(conn.closed_at, 0.2)
        self.assertEqual(log[-1], "Client hung up after 20 of 50 bytes (Broken pipe).")

    def test_logs_a_line_per_chunk(self):
        clock = FakeClock()
        log = []
        serve_client(
            FakeConnection(clock),
            b"x" * 25,
            PoemSchedule(25, 10, 0.1),
            clock=clock,
            sleep=clock.sleep,
            log=log.append,
        )
        self.assertEqual(log, ["Sending 10 bytes", "Sending 10 bytes", "Sending 5 bytes"])


class RealSocketClientTests(SynchronousTestCase):
    """The blocking server's two defences, on a real socket pair: no waiting on the gone or the stuck."""

    def serve_in_thread(self, *args, **kwargs):
        import threading

        log: list[str] = []
        result: list[int] = []
        thread = threading.Thread(
            target=lambda: result.append(serve_client(*args, log=log.append, **kwargs)), daemon=True
        )
        thread.start()
        return thread, log, result

    def test_a_client_that_closes_costs_no_delay(self):
        import socket

        server_end, client_end = socket.socketpair()
        client_end.close()  # gone before the first chunk
        # A minute between chunks: the server may only finish at once if it noticed the close.
        thread, log, _result = self.serve_in_thread(server_end, b"x" * 30, PoemSchedule(30, 10, 60.0))
        thread.join(10)
        self.assertFalse(thread.is_alive())
        self.assertTrue(log[-1].startswith("Client hung up after "), log)

    def test_a_client_that_stops_reading_is_dropped(self):
        import socket

        server_end, client_end = socket.socketpair()
        self.addCleanup(client_end.close)
        poem = b"x" * (16 << 20)  # far more than the socket buffers hold
        thread, log, result = self.serve_in_thread(
            server_end, poem, PoemSchedule(len(poem), len(poem), 0.0), client_timeout=0.2
        )
        thread.join(10)
        self.assertFalse(thread.is_alive())
        self.assertLess(result[0], len(poem))
        self.assertTrue(
            log[-1].startswith("Dropped a client after 0 of 16777216 bytes: it read nothing"), log
        )

    def test_a_chatty_client_is_heard_and_ignored(self):
        import socket

        server_end, client_end = socket.socketpair()
        self.addCleanup(client_end.close)
        client_end.sendall(b"hello? " * 1000)
        thread, _log, result = self.serve_in_thread(server_end, b"abcdef", PoemSchedule(6, 3, 0.05))
        thread.join(10)
        self.assertEqual(result, [6])
        self.assertEqual(client_end.recv(100), b"abcdef")
