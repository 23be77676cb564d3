"""The lab's parts on their own, on a fake clock: its children's lines, a page that stops reading,
one run at a time until the last has stopped, the wait for a closed page, the events kept, the
reaper, and the file that opens the page. tests/test_lab.py drives them whole, over HTTP."""

from __future__ import annotations

import os
import signal
import stat

from twisted.internet import defer, error, task
from twisted.python.failure import Failure

from poetrynow.lab import children, guard, pages, reaping, runs, site
from poetrynow.lab.doorway import Doorway
from poetrynow.lab.plan import Plan
from tests.time_limit import SynchronousTestCase


def ended(code: int = 0) -> Failure:
    return Failure(error.ProcessDone(0) if code == 0 else error.ProcessTerminated(code))


class ChildLineTests(SynchronousTestCase):
    def test_a_line_in_many_pieces_is_one_line(self):
        said: list[str] = []
        child = children.Child(task.Clock(), said.append)
        for piece in [b"x"] * 5000 + [b"\nsecond\nthi", b"rd"]:
            child.outReceived(piece)
        self.assertEqual(said, ["x" * 5000, "second"])
        child.processEnded(ended())
        self.assertEqual(said[-1], "third")  # a last line without its newline is still a line
        self.assertEqual(self.successResultOf(child.ended), 0)

    def test_a_line_the_lab_cannot_take_costs_that_line_only(self):
        said: list[str] = []

        def take(line: str) -> None:
            if line == "bad":
                raise KeyError("task")
            said.append(line)

        child = children.Child(task.Clock(), take)
        child.outReceived(b"one\nbad\ntwo\nbad")
        child.processEnded(ended(3))
        self.assertEqual(said, ["one", "two"])
        self.assertEqual(self.successResultOf(child.ended), 3)  # fired, though its last line failed
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 2)

    def test_a_child_that_cannot_be_started_has_ended_saying_why(self):
        class Refusing:
            def spawnProcess(self, *args, **kwargs):
                raise OSError(24, "Too many open files")

        child = children.spawn(Refusing(), "get-poetry", [], children.Child(task.Clock(), lambda line: None))
        self.assertEqual(self.successResultOf(child.ended), children.NOT_STARTED)
        self.assertIn("get-poetry could not be started", child.reason())
        self.assertIn("Too many open files", child.reason())

    def test_a_line_past_the_limit_stops_the_child(self):
        self.patch(children, "LINE_LIMIT", 100)
        child = children.Child(task.Clock(), lambda line: None)
        stopped: list[bool] = []
        child.stop = lambda: stopped.append(True)  # type: ignore[method-assign]
        child.outReceived(b"y" * 101)
        self.assertEqual((stopped, bytes(child.pending)), ([True], b""))
        self.assertIn("past the lab's limit", child.reason())


class FakeTransport:
    def __init__(self):
        self.aborted = False

    def abortConnection(self):
        self.aborted = True


class FakeRequest:
    """A twisted.web request as a page's stream uses it."""

    def __init__(self):
        self.written: list[bytes] = []
        self.producer = None
        self.finished = defer.Deferred()
        self.transport = FakeTransport()
        self.ended = False

    def registerProducer(self, producer, streaming):
        self.producer = (producer, streaming)

    def unregisterProducer(self):
        self.producer = None

    def write(self, data):
        self.written.append(data)

    def finish(self):
        self.ended = True

    def notifyFinish(self):
        return self.finished


class PageTests(SynchronousTestCase):
    def test_a_page_that_stops_reading_is_dropped_past_its_bound(self):
        self.patch(pages, "MAX_BEHIND", 1000)
        request = FakeRequest()
        page = pages.Page(request)
        self.assertEqual(request.producer, (page, True))  # its connection's buffer can pause it
        page.pauseProducing()
        for _ in range(10):
            page.write(b"x" * 100)  # (buffered by the connection: it holds them)
        self.assertFalse(request.transport.aborted)
        page.resumeProducing()
        page.pauseProducing()
        for _ in range(11):
            page.write(b"x" * 100)
        self.assertTrue(request.transport.aborted)
        self.assertEqual(len(request.written), 20)  # the one past the bound was not buffered
        page.write(b"more")
        self.assertEqual(len(request.written), 20)

    def test_a_reload_s_replay_is_not_counted_against_the_bound(self):
        self.patch(pages, "MAX_BEHIND", 1000)
        request = FakeRequest()
        page = pages.Page(request)
        page.pauseProducing()  # (as a connection does once its buffer is full, mid-replay)
        for _ in range(50):
            page.write(b"x" * 100, replay=True)
        self.assertFalse(request.transport.aborted)
        self.assertEqual(len(request.written), 50)

    def test_finishing_lets_go_of_the_producer(self):
        request = FakeRequest()
        page = pages.Page(request)
        page.finish()
        self.assertEqual((request.producer, request.ended), (None, True))
        page.finish()  # (once)


class FakeRun:
    def __init__(self):
        self.over = False
        self.why: list[str] = []
        self.done: defer.Deferred[None] = defer.Deferred()
        self.kept: list[dict] = []
        self.dropped = 0
        self.closed = False

    def cancel(self, why="cancelled from the page"):
        self.why.append(why)
        self.over = True

    def close(self):
        self.closed = True


class LabTests(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.lab = site.Lab(self.clock, "token")

    def test_no_new_run_while_the_last_one_is_stopping(self):
        run = FakeRun()
        self.lab.run = run  # type: ignore[assignment]
        self.assertIn("a run is going on", self.lab.busy())
        run.cancel()
        self.assertIn("still stopping its servers", self.lab.busy())  # its children are ending
        run.done.callback(None)
        self.assertIsNone(self.lab.busy())

    def test_a_closed_page_cancels_the_run_it_was_watching_and_no_other(self):
        run = FakeRun()
        self.lab.run = run  # type: ignore[assignment]
        request = FakeRequest()
        self.lab.opened(request)
        request.finished.callback(None)  # the page goes
        self.clock.advance(site.GONE_AFTER - 0.1)
        again = FakeRequest()
        self.lab.opened(again)  # a reload, in time
        self.clock.advance(1)
        self.assertEqual(run.why, [])
        again.finished.callback(None)
        newer = FakeRun()
        self.lab.run = newer  # type: ignore[assignment]
        self.clock.advance(site.GONE_AFTER)
        self.assertEqual((run.why, newer.why), ([], []))  # armed for the run before: no one's
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_the_lab_stopping_cancels_once_and_arms_nothing(self):
        run = FakeRun()
        self.lab.run = run  # type: ignore[assignment]
        request = FakeRequest()
        request.finish = lambda: request.finished.callback(None)  # type: ignore[method-assign]
        self.lab.opened(request)
        d = self.lab.stop()
        self.assertEqual(run.why, ["the lab stopped"])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertNoResult(d)  # until its children have ended
        run.done.callback(None)
        self.successResultOf(d)
        self.assertTrue(run.closed)

    def test_a_late_message_of_a_run_replaced_is_not_heard(self):
        made: list = []

        class Recorded(FakeRun):
            def __init__(self, plan, reactor, publish):
                super().__init__()
                self.publish = publish
                made.append(self)

            def start(self):
                pass

        self.patch(site, "LabRun", Recorded)
        request = FakeRequest()
        self.lab.opened(request)
        plan = Plan.from_json({})
        self.lab.begin(plan)
        made[0].publish({"type": "begin"})
        made[0].over = True
        made[0].done.callback(None)
        self.lab.begin(plan)
        self.assertTrue(made[0].closed)  # its folder goes once it has stopped
        made[0].publish({"type": "event", "late": True})
        made[1].publish({"type": "begin"})
        self.assertEqual(request.written, [b'data: {"type": "begin"}\n\n'] * 2)


class KeptTests(SynchronousTestCase):
    def test_events_past_the_bound_are_dropped_but_not_the_run_s_own_messages(self):
        self.patch(runs, "MAX_EVENTS", 3)
        heard: list[dict] = []
        run = runs.LabRun(Plan.from_json({}), task.Clock(), heard.append)
        self.addCleanup(run.close)
        for n in range(5):
            run.publish({"type": "event", "n": n})
        run.publish({"type": "table", "table": "..."})
        run.publish({"type": "cancelled", "why": "x"})
        self.assertEqual(len(heard), 7)  # the live page hears every one
        self.assertEqual([m["type"] for m in run.kept], ["event"] * 3 + ["table", "cancelled"])
        self.assertEqual(run.dropped, 2)


class ReapingTests(SynchronousTestCase):
    def test_twisted_s_reaper_where_it_is_and_each_child_s_own_where_not(self):
        from twisted.internet import process

        self.assertIs(reaping.reaper(list), process.reapAllProcesses)
        self.patch(process, "reapAllProcesses", None)

        class Transport:
            reaped = 0

            def reapProcess(self):
                self.reaped += 1

        mine = [Transport(), Transport(), object()]  # (one without: passed over)
        reaping.reaper(lambda: mine)()
        self.assertEqual([t.reaped for t in mine[:2]], [1, 1])
        self.flushLoggedErrors()

    def test_the_handler_before_is_back_when_the_lab_stops(self):
        before = signal.getsignal(signal.SIGCHLD)
        clock = task.Clock()
        clock.callFromThread = lambda f, *args: f(*args)  # type: ignore[attr-defined]
        reaps = reaping.Reaping(clock, list)
        reaps.reap = lambda: reaps.__dict__.setdefault("count", []).append(1)  # type: ignore[method-assign]
        reaps.start()
        self.addCleanup(reaps.stop)
        self.assertIsNot(signal.getsignal(signal.SIGCHLD), before)
        clock.advance(reaping.BACKSTOP)
        self.assertEqual(reaps.__dict__["count"], [1])  # a reap no signal asked for
        signal.getsignal(signal.SIGCHLD)(signal.SIGCHLD, None)
        self.assertEqual(reaps.__dict__["count"], [1, 1])  # and one a child's end asked for
        reaps.stop()
        self.assertEqual(signal.getsignal(signal.SIGCHLD), before)
        self.assertEqual(clock.getDelayedCalls(), [])


class DoorwayTests(SynchronousTestCase):
    def test_the_page_s_address_is_in_a_file_only_its_user_reads(self):
        doorway = Doorway()
        url = 'http://127.0.0.1:8/?token=a"b<c'
        path = doorway.write(url)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(path.parent).st_mode), 0o700)
        text = path.read_text()
        self.assertIn('url=http://127.0.0.1:8/?token=a&quot;b&lt;c"', text)
        doorway.close()
        self.assertFalse(path.parent.exists())


class GuardTests(SynchronousTestCase):
    def test_the_lab_s_own_hosts_and_origins(self):
        self.assertEqual(guard.hosts(8), {"127.0.0.1:8", "localhost:8", "[::1]:8"})
        self.assertIn("http://[::1]:8", guard.origins(8))
        self.assertNotIn("http://127.0.0.1:9", guard.origins(8))
