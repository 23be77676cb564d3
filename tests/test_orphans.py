"""Nothing outlives its server: a transform server killed outright takes its workers with it.

A clean stop ends the process pool's workers through the pool; SIGKILL gives no stop
at all, and the workers (and multiprocessing's helper) were seen alive for as long as
the machine ran. Each worker watches for its parent's death
(:func:`poetrynow.servers.transform.processes.end_with`); this test kills a real server with
SIGKILL and looks, through /proc, for every process it had started.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import unittest
from pathlib import Path

from tests.support import DEADLINE, Child, Server, command
from tests.time_limit import SynchronousTestCase

#: The issue's bound (2 s) and room for a loaded machine: a poll until then, not a sleep.
GONE_WITHIN = 10.0


def parent_of(pid: int) -> int | None:
    """The parent's pid from /proc/PID/stat (the name may hold spaces: read after its ')')."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def started(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot, /proc/PID/stat's 22nd field): with the pid,
    a process's identity, so that a pid the kernel gave to someone else is never killed."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def descendants(root: int) -> dict[int, int | None]:
    """Every process below ``root`` now, each with when it started."""
    found: dict[int, int | None] = {}
    frontier = {root}
    while frontier:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
        frontier = {pid for pid in pids if parent_of(pid) in frontier} - set(found)
        found.update((pid, started(pid)) for pid in frontier)
    return found


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for whoever adopted it to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def left_after_sigkill(process, children: set[int]) -> set[int]:
    """SIGKILL ``process``, then poll until ``children`` are gone or GONE_WITHIN passes; who is left."""
    os.kill(process.pid, signal.SIGKILL)
    process.wait(GONE_WITHIN)
    deadline = time.monotonic() + GONE_WITHIN
    while {pid for pid in children if alive(pid)} and time.monotonic() < deadline:
        time.sleep(0.05)
    return {pid for pid in children if alive(pid)}


def still_below(process) -> dict[int, int | None]:
    """What runs below ``process`` now, if it has not been reaped (then its pid may be anyone's)."""
    return descendants(process.pid) if process.poll() is None else {}


def kill_all(processes: dict[int, int | None]) -> None:
    """SIGKILL each of ``processes`` that is still the process it was (same pid, same start)."""
    for pid, start in processes.items():
        if start is None or started(pid) != start:
            continue
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@unittest.skipUnless(sys.platform.startswith("linux"), "reads the process tree from /proc")
class KilledServerTests(SynchronousTestCase):
    def test_a_transform_server_killed_by_sigkill_leaves_no_process_behind(self):
        server = Server("--cost-in", "process", "--workers", "2", command_name="transformedpoetry")
        children: dict[int, int | None] = {}
        try:
            children = descendants(server.process.pid)
            self.assertGreaterEqual(len(children), 2, "the pool's workers run before the listening line")
            self.assertEqual(left_after_sigkill(server.process, set(children)), set())
        finally:
            kill_all({**children, **still_below(server.process)})  # a failure leaves none behind
            server.stop()


@unittest.skipUnless(sys.platform.startswith("linux"), "PR_SET_PDEATHSIG is Linux's; reads /proc")
class KilledDemoTests(SynchronousTestCase):
    def test_the_demo_killed_by_sigkill_takes_its_servers_with_it(self):
        demo = Child(
            command("poetrynow") + ["demo", "--delay", "1", "--engines", "blocking", "--no-timeline"]
        )
        children: dict[int, int | None] = {}
        try:
            serving = 0
            while serving < 3:  # the demo prints each server's listening line as it starts it
                serving += demo.out.next_line(DEADLINE).startswith("Serving ")
            children = descendants(demo.process.pid)
            self.assertGreaterEqual(len(children), 3)
            self.assertEqual(left_after_sigkill(demo.process, set(children)), set())
        finally:
            kill_all({**children, **still_below(demo.process)})
            demo.stop()


#: A helper whose END_WITH names a pid that is not its parent: its starter is gone.
ORPHANED_HELPER = """
import sys, time
sys.platform = {platform!r}
from poetrynow import stopping
if {refused!r}:
    stopping.parent_death_signal = lambda signum: False
stopping.end_with_parent()
time.sleep(30)
"""


class OrphanedHelperTests(SynchronousTestCase):
    """The starter's death is seen on Linux (PR_SET_PDEATHSIG) and elsewhere (a pid watch):
    the platform is varied in the helper itself, so both paths run on this machine."""

    def ended_by_sigterm(self, platform: str, refused: bool = False) -> None:
        import subprocess

        from poetrynow.stopping import END_WITH

        env = dict(os.environ, **{END_WITH: "999999999"})  # no process has it: not the parent
        helper = subprocess.run(
            [sys.executable, "-c", ORPHANED_HELPER.format(platform=platform, refused=refused)],
            env=env,
            timeout=GONE_WITHIN,
        )
        self.assertEqual(helper.returncode, -signal.SIGTERM)

    @unittest.skipUnless(sys.platform.startswith("linux"), "PR_SET_PDEATHSIG is Linux's")
    def test_on_linux_the_kernel_signal(self):
        self.ended_by_sigterm("linux")

    def test_elsewhere_the_pid_watch(self):
        self.ended_by_sigterm("darwin")

    def test_on_linux_where_the_kernel_refuses_the_pid_watch(self):
        self.ended_by_sigterm("linux", refused=True)

    def test_a_command_whose_starter_is_gone_ends_at_once_without_a_traceback(self):
        import subprocess

        from poetrynow.stopping import END_WITH
        from tests.support import command

        env = dict(os.environ, **{END_WITH: "999999999"})
        ended = subprocess.run(
            command("slowpoetry") + ["kettle", "--port", "0"],
            env=env,
            capture_output=True,
            text=True,
            timeout=GONE_WITHIN * 3,
        )
        self.assertNotIn("Traceback", ended.stderr)
        self.assertEqual(ended.stdout, "")  # it ended before it served
        self.assertNotEqual(ended.returncode, 0)
