"""Get Poetry Now!: the slow poetry system of "An Introduction to Asynchronous
Programming and Twisted", built as one package.

The servers and clients share two seams: protocol logic with no I/O (pacing,
netstrings, transforms) that any engine can drive, and client engines that only
produce events (:mod:`poetrynow.events`) which one reporter renders.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    # One source: the version in pyproject.toml, as the installed metadata has it.
    __version__ = version("poetrynow")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
