"""The kernel's own count of what a burst cost: listen overflows and SYN retransmits.

A median of times can hide a cold server that fell behind: the clients whose SYN
was dropped wait one to three seconds for its retransmit, and the next wave,
on a warm server, is fine. The kernel counts each drop, so the benchmarks and the
burst test read its counters (Linux's /proc/net/netstat, TcpExt) before and after
a run. Elsewhere they are "n/a".

The counters are the network namespace's, not the process's: anything else on the
machine that overflows a queue adds to them. :func:`private_network` runs a command
in a network namespace of its own (``unshare``, as root or in a user namespace),
with only its loopback, so that what is counted is the run's alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

NETSTAT = Path("/proc/net/netstat")

#: What is read: the name printed, and the TcpExt field.
COUNTED = {"listen overflows": "ListenOverflows", "SYN retransmits": "TCPSynRetrans"}

#: Set in a command that private_network started, so that it is not started again.
INSIDE = "POETRYNOW_PRIVATE_NETWORK"


def read() -> dict[str, int] | None:
    """The counters now, or None where the kernel has no /proc/net/netstat."""
    try:
        lines = NETSTAT.read_text().splitlines()
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:") and values.startswith("TcpExt:"):
            fields = dict(zip(names.split()[1:], (int(v) for v in values.split()[1:]), strict=False))
            return {label: fields.get(field, 0) for label, field in COUNTED.items()}
    return None


def since(before: dict[str, int] | None) -> dict[str, int] | None:
    """What each counter went up by since ``before`` (None: not counted here)."""
    after = read()
    if before is None or after is None:
        return None
    return {label: after[label] - before[label] for label in before}


def shown(delta: dict[str, int] | None, label: str) -> str:
    return "n/a" if delta is None else f"{delta[label]:,}"


def most(deltas: list[dict[str, int] | None], label: str) -> str:
    """The most that ``label`` went up by in any of these runs: "n/a" where one was not
    counted, "-" where there was no run."""
    if not deltas:
        return "-"
    if any(delta is None for delta in deltas):
        return "n/a"
    return f"{max(delta[label] for delta in deltas if delta is not None):,}"


def private_network(argv: list[str]) -> list[str] | None:
    """``argv`` to run in a network namespace of its own, or None where none can be had.

    ``unshare -n`` as root, ``unshare -rn`` (a user namespace) otherwise; the command
    finds itself inside through :data:`INSIDE` and brings its loopback up
    (:func:`loopback_up`).
    """
    unshare = shutil.which("unshare")
    if unshare is None or not NETSTAT.exists():
        return None
    for flags in (["-n"], ["-rn"]) if os.geteuid() == 0 else (["-rn"],):
        try:
            probe = subprocess.run([unshare, *flags, "true"], capture_output=True, timeout=10)
        except subprocess.TimeoutExpired:
            continue
        if probe.returncode == 0:
            return [unshare, *flags, "--", *argv]
    return None


def run_isolated() -> int | None:
    """Run this script again in a network namespace of its own, for counts that are its alone.

    Returns the exit status of that run, for the caller to exit with; or None when the
    caller is to go on here: it is that run (its loopback is brought up), or no namespace
    can be had (said once on stderr: the counts are the machine's).

    The run inside ends with this one, by any signal: SIGINT, SIGTERM and SIGHUP are
    passed on to it, and it stops as a command does on Ctrl-C (the ``finally`` blocks
    that stop its servers run); a SIGKILL here reaches it as SIGTERM, from the kernel
    (:func:`poetrynow.stopping.end_with_parent`). ``unshare`` without ``--fork`` runs
    the script in its own place, so the run inside is this process's child.
    """
    from poetrynow.stopping import END_WITH, interrupt_on_signals

    if os.environ.get(INSIDE) is not None:
        interrupt_on_signals()
        loopback_up()
        return None
    inside = private_network([sys.executable, *sys.argv])
    if inside is None:
        if NETSTAT.exists():
            print("no network namespace of its own here: the counters are the machine's", file=sys.stderr)
        return None
    env = dict(os.environ, **{INSIDE: "1", END_WITH: str(os.getpid())})
    run = subprocess.Popen(inside, env=env)

    def pass_on(signum, frame) -> None:
        # SIGHUP as SIGTERM: the run inside stops on SIGINT and SIGTERM (its finally blocks run)
        with contextlib.suppress(ProcessLookupError):
            run.send_signal(signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)

    passed = [s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
    before = {signum: signal.signal(signum, pass_on) for signum in passed}
    try:
        status = run.wait()
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
        if run.poll() is None:  # an exception here, not the run's end: it ends too, cleanly first
            run.terminate()
            try:
                run.wait(30)
            except subprocess.TimeoutExpired:
                run.kill()
                run.wait()
    return status if status >= 0 else 128 - status  # killed by signal n: the shell's 128 + n


#: ioctl requests and the flag of <linux/sockios.h> and <net/if.h>, to bring ``lo`` up.
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def loopback_up() -> None:
    """Bring up ``lo`` in a new network namespace (where it starts down), as ``ip link set lo up``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH", b"lo", 0).ljust(40, b"\0")
        flags = struct.unpack("16sH", fcntl.ioctl(sock, SIOCGIFFLAGS, request)[:18])[1]
        if not flags & IFF_UP:
            fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP).ljust(40, b"\0"))
