"""The clients' own exceptions, in a module without Twisted.

The Twisted API (``get_poetry``, ``TransformProxy``) raises them, and so do the
asyncio-based engines, which should not have to import Twisted to do it.
"""


class PoemTimeout(Exception):
    """The server sent nothing for longer than the client's timeout."""


class TransformFailed(Exception):
    """The transform server closed without an answer (or with a malformed one)."""


#: Why a transform failed when the server closed without answering.
NO_ANSWER = "the transform server closed without an answer"


#: Why a task that got a clean close and no byte at all failed: no poem is not a poem.
EMPTY = "the server closed without sending a poem"


class EmptyPoem(Exception):
    """The server closed cleanly without sending a byte."""

    def __init__(self, message: str = EMPTY):
        super().__init__(message)


#: The largest poem a client takes by default (``--max-bytes``): far above any real poem,
#: far below what an endless server would make a client hold.
DEFAULT_MAX_BYTES = 64 << 20


class PoemTooLarge(OSError):
    """The server sent more than the client's limit: the connection is closed, the task failed.

    An OSError, like the other ways a read ends badly, so that every engine's read
    loop handles it where it handles a reset.
    """

    def __init__(self, limit: int):
        super().__init__(f"poem larger than {limit} bytes")
        self.limit = limit


#: How downloads and transforms fail when the network or the peer fails, not a bug
#: (TimeoutError and PoemTooLarge are OSErrors).
NETWORK_FAILURES: tuple[type[BaseException], ...] = (OSError, PoemTimeout, EmptyPoem, TransformFailed)


def check_size(received: int, limit: int | None) -> None:
    """Raise PoemTooLarge once ``received`` bytes are past ``limit``."""
    if limit is not None and received > limit:
        raise PoemTooLarge(limit)
