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
