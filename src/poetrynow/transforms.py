"""The transform service's transforms: pure functions from poem text to poem text.

The registry maps the names a client sends (``cummingsify.<poem>``) to functions.
``explode`` always raises, so that a client's fallback to the original poem can be
seen working on demand.
"""

from __future__ import annotations

from collections.abc import Callable

Transform = Callable[[str], str]


class TransformError(Exception):
    """A transform is unknown, or failed on this poem."""


def cummingsify(poem: str) -> str:
    """e. e. cummings's way with capitals: none."""
    return poem.lower()


def shout(poem: str) -> str:
    """Every letter a capital."""
    return poem.upper()


def backwards(poem: str) -> str:
    """The lines in reverse order, last line first."""
    return "".join(reversed(poem.splitlines(keepends=True)))


def explode(poem: str) -> str:
    """Always fails: a transform that breaks, for testing fallbacks."""
    raise RuntimeError("this transform always explodes")


TRANSFORMS: dict[str, Transform] = {
    "cummingsify": cummingsify,
    "shout": shout,
    "backwards": backwards,
    "explode": explode,
}


def apply(name: str, poem: bytes, registry: dict[str, Transform] = TRANSFORMS) -> bytes:
    """Transform UTF-8 poem bytes by name; raise TransformError for any failure."""
    try:
        function = registry[name]
    except KeyError:
        raise TransformError(f"unknown transform {name!r}") from None
    try:
        text = poem.decode("utf-8")
    except UnicodeDecodeError as error:
        raise TransformError(f"poem is not UTF-8: {error.reason} at byte {error.start}") from None
    try:
        return function(text).encode("utf-8")
    except Exception as error:
        raise TransformError(f"{name} failed: {error}") from error
