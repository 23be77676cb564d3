"""Get Poetry Now!: the slow poetry system of "An Introduction to Asynchronous
Programming and Twisted", built as one package.

The servers and clients share two seams: protocol logic with no I/O (pacing,
netstrings, transforms) that any engine can drive, and client engines that only
produce events (:mod:`poetrynow.events`) which one reporter renders.
"""

__version__ = "0.1.0"
