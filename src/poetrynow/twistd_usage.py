"""Options of a twistd plugin whose usage errors end twistd with status 1, on every Twisted.

twistd prints a plugin's usage error, but before Twisted 26.10 it then returned, and
exited 0: ``twistd fastpoetry`` without ``--poem`` looked like a success to a script or
a service manager. A plugin's options are parsed inside twistd's own, so they can end
the run themselves: print what twistd prints (its usage, then the error after the
command line's first two words), and exit 1, as twistd does since 26.10. Elsewhere
(``twist``, or options parsed on their own) the error goes up to the caller as usual.
"""

from __future__ import annotations

import sys

from twisted.application.app import ServerOptions as TwistdOptions
from twisted.python import usage


class PluginOptions(usage.Options):
    """usage.Options for a twistd plugin: a usage error under twistd exits 1."""

    def parseOptions(self, options=None):
        try:
            super().parseOptions(options)
        except usage.UsageError as problem:
            if not isinstance(self.parent, TwistdOptions):
                raise
            print(self.parent)
            print(f"{' '.join(sys.argv[0:2])}: {problem}")
            sys.exit(1)
