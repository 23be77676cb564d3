"""``poetrynow faults``: toxiproxy's HTTP API, and the relays it starts, on one reactor.

The API's address is printed first, flushed, as every server's listening line
is, so that a script (or a test) started with ``--api 127.0.0.1:0`` can read the
port. ``--config FILE`` is toxiproxy's ``-config``: a JSON list of proxies,
populated before the API answers. Ctrl-C and SIGTERM stop the relays and the
API with one line and the usual status, as :func:`poetrynow.cli.serving.serve`
stops a server.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from poetrynow import validate
from poetrynow.cli.common import FAILED, OK, USAGE, error, non_negative_int, raise_fd_limit, stopped

PROG = "poetrynow faults"
#: toxiproxy's own port, so that a client library's default finds this API.
DEFAULT_API = ("127.0.0.1", 8474)


def api_address(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT`` or a bare ``PORT`` (on 127.0.0.1); port 0 picks a free one."""
    host, port_text = DEFAULT_API[0], text
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            raise argparse.ArgumentTypeError(f"bad address {text!r}: expected [host]:port")
        host, port_text = text[1:end], text[end + 2 :]
    elif ":" in text:
        host, _, port_text = text.rpartition(":")
        if ":" in host:
            raise argparse.ArgumentTypeError(
                f"bad address {text!r}: put an IPv6 host in brackets, [::1]:port"
            )
    if not host:
        raise argparse.ArgumentTypeError(f"bad address {text!r}: empty host")
    try:
        return host, validate.port(port_text)
    except ValueError as problem:
        raise argparse.ArgumentTypeError(f"bad address {text!r}: {problem}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The subcommand's options, for ``poetrynow``'s parser."""
    p.add_argument(
        "--api",
        type=api_address,
        default=DEFAULT_API,
        metavar="HOST:PORT",
        help="where the toxiproxy HTTP API listens (default: 127.0.0.1:8474, toxiproxy's; port 0 picks one)",
    )
    p.add_argument(
        "--seed",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="make each connection's fate (toxicity, jitter, slice sizes) depend only on N and the "
        "connection's number, so that a run can be repeated",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="a JSON list of proxies to create at start, as toxiproxy's -config and POST /populate take",
    )
    p.add_argument(
        "--no-splice",
        action="store_true",
        help="copy every byte in user space, even where no toxic acts (by default the kernel moves "
        "those, with splice(2), on Linux)",
    )
    p.add_argument(
        "--tls-dir",
        metavar="DIR",
        default=None,
        help="keep the TLS relays' CA and certificate in DIR (made there if absent, mode 0700) and reuse "
        "them in later runs; by default they are made for the run, in memory (needs the tls extra)",
    )
    p.add_argument("--quiet", action="store_true", help="log only warnings and errors")


class ConfigError(ValueError):
    """A ``--config`` file that cannot be read, or is not a JSON list of proxy objects."""


def read_config(path: str) -> list:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as problem:
        raise ConfigError(f"cannot read {path}: {problem.strerror or problem}") from None
    try:
        proxies = json.loads(data)
    except ValueError as problem:
        raise ConfigError(f"{path} is not JSON: {problem}") from None
    if not isinstance(proxies, list) or not all(isinstance(proxy, dict) for proxy in proxies):
        raise ConfigError(f"{path}: expected a JSON list of proxies, as toxiproxy's -config takes")
    return proxies


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def run(args: argparse.Namespace) -> int:
    """Listen, populate, print the API's line, then serve until a signal."""
    from twisted.internet import reactor
    from twisted.internet.error import CannotListenError
    from twisted.logger import LogLevel

    from poetrynow.cli.serving import StartUpLog
    from poetrynow.clients.reactors import stop_reactor, watching
    from poetrynow.collector import collect_seldom
    from poetrynow.relay.relays import Relays
    from poetrynow.relay.site import faults_site
    from poetrynow.relay.toxics import ApiError
    from poetrynow.servers.common.listen import cannot_listen
    from poetrynow.stopping import Interrupted, interrupt_on_signals, loop_stopped_by_signals

    try:
        config = read_config(args.config) if args.config else []
    except ConfigError as problem:
        return error(PROG, str(problem), USAGE)
    authority = None
    if args.tls_dir is not None:
        from poetrynow.relay.authority import Authority, AuthorityError, missing

        why = missing()
        if why is not None:
            return error(PROG, why, FAILED)
        try:
            authority = Authority(args.tls_dir)
        except AuthorityError as problem:
            return error(PROG, str(problem), FAILED)
    raise_fd_limit()  # each relayed connection is two descriptors
    from poetrynow.relay import kernel

    kernel.disabled = args.no_splice
    level = LogLevel.warn if args.quiet else LogLevel.info
    # The relays of --config log as they start: after the API's line.
    log = StartUpLog(level, reactor, keep=lambda event: True)
    interrupt_on_signals()
    call_in_loop = reactor.callFromThread  # type: ignore[attr-defined]  # typed as any reactor
    with loop_stopped_by_signals(call_in_loop, lambda: stop_reactor(reactor), watching(reactor)) as caught:
        host, port = args.api
        relays = Relays(reactor=reactor, seed=args.seed, authority=authority)
        try:
            # A Site, which Twisted's stubs do not take for a factory:
            site: Any = faults_site(relays, reactor=reactor)
            api = reactor.listenTCP(port, site, interface=host)
        except CannotListenError as problem:
            label = f"{url_host(host)}:{port}"
            return error(PROG, cannot_listen(label, problem.socketError), FAILED)
        failed: list[Any] = []  # (no port is closing yet, so populate has ended when it returns)
        if config:
            relays.populate(config).addErrback(failed.append)
        if failed:
            refusal = failed[0].value
            if not isinstance(refusal, ApiError):
                failed[0].raiseException()
            api.stopListening()
            relays.stop()
            return error(
                PROG, f"{args.config}: {refusal.message}", USAGE if refusal.status == 400 else FAILED
            )
        where: Any = api.getHost()  # an IPv4Address or IPv6Address
        print(f"Faults API on http://{url_host(where.host)}:{where.port}/", flush=True)
        log.started()
        kernel.said()  # which path moves the bytes that meet no toxic: one line
        collect_seldom()  # thousands of relayed connections are not garbage
        counted: list[int] = []

        def stop_relays():
            counted.append(len(relays.all()))
            return relays.stop()

        reactor.addSystemEventTrigger("before", "shutdown", stop_relays)
        reactor.addSystemEventTrigger("before", "shutdown", api.stopListening)
        reactor.run(installSignalHandlers=False)  # type: ignore[call-arg]
    if not caught:
        return OK
    count = counted[0] if counted else 0
    what = f"{count} relay{'s' if count != 1 else ''} and the API stopped"
    return stopped(PROG, Interrupted(caught[0]), what)
