"""The checks every front end makes on numbers and addresses it is given.

Each check takes the text a user typed and returns the value, or raises
ValueError with a reason a person can act on. argparse (:mod:`poetrynow.cli`)
and twistd's usage.Options (:mod:`poetrynow.plugins`) each word the error their
own way around that reason.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import TypeVar

from poetrynow.address import Address, parse_address

T = TypeVar("T")


def _number(
    text: str, convert: Callable[[str], T], expected: str, valid: Callable[[T], bool], rule: str
) -> T:
    try:
        value = convert(text)
    except ValueError:
        raise ValueError(f"expected {expected}, got {text!r}") from None
    if not valid(value):
        raise ValueError(f"{rule}, got {text}")
    return value


def positive_int(text: str) -> int:
    return _number(text, int, "a whole number", lambda v: v >= 1, "must be at least 1")


def non_negative_int(text: str) -> int:
    return _number(text, int, "a whole number", lambda v: v >= 0, "must be 0 or more")


#: The longest delay or timeout taken: a week. Far longer ones overflow the
#: platform's time_t in sleep() and socket timeouts, and no poem needs them.
MAX_SECONDS = 7 * 24 * 3600


def seconds(text: str) -> float:
    """A number of seconds from 0 to a week."""
    return _number(
        text,
        float,
        "a number of seconds",
        lambda v: math.isfinite(v) and 0 <= v <= MAX_SECONDS,
        f"must be a number of seconds from 0 to {MAX_SECONDS} (a week)",
    )


def fraction(text: str) -> float:
    """A share, from 0 to 1."""
    return _number(
        text, float, "a number from 0 to 1", lambda v: math.isfinite(v) and 0 <= v <= 1, "must be from 0 to 1"
    )


def rate(text: str) -> float:
    """Bytes a second: more than 0."""
    return _number(
        text, float, "a number of bytes a second", lambda v: math.isfinite(v) and v > 0, "must be more than 0"
    )


def one_of(text: str, choices: Sequence[str]) -> str:
    """One of a few words: argparse's ``choices=``, for twistd's options."""
    if text not in choices:
        raise ValueError(f"expected one of {', '.join(choices)}, got {text!r}")
    return text


def writable_file(text: str) -> str:
    """A file that can be appended to, or made: its folder exists. Nothing is made here."""
    if not text:
        raise ValueError("expected a file name, got ''")
    if os.path.isdir(text):
        raise ValueError(f"{text!r} is a folder, not a file")
    folder = os.path.dirname(text) or "."
    if not os.path.isdir(folder):
        raise ValueError(f"no such folder: {folder!r}")
    if not os.access(text if os.path.exists(text) else folder, os.W_OK):
        raise ValueError(f"cannot write {text!r}: permission denied")
    return text


def port(text: str) -> int:
    return _number(text, int, "a port number", lambda v: 0 <= v <= 65535, "a port is from 0 to 65535")


def address(text: str) -> Address:
    """``[host:]port``; AddressError is a ValueError."""
    return parse_address(text)


def server_endpoint(text: str) -> str:
    """A Twisted server endpoint description that ``serverFromString`` can build.

    Built on a MemoryReactor, so nothing listens and no reactor is installed: a
    twistd plugin's options are read before twistd installs the reactor asked for.
    """
    from twisted.internet.endpoints import serverFromString
    from twisted.internet.testing import MemoryReactor

    if not text or ":" not in text:
        raise ValueError(f"expected an endpoint such as tcp:10000 or unix:/tmp/poetry.sock, got {text!r}")
    try:
        serverFromString(MemoryReactor(), text)
    except ImportError:
        raise ValueError(
            f"{text.split(':', 1)[0]}: needs Twisted's TLS support: pip install 'poetrynow[tls]'"
        ) from None
    except Exception as problem:  # serverFromString says what is wrong in many ways
        raise ValueError(f"bad endpoint {text!r}: {problem or type(problem).__name__}") from None
    return text
