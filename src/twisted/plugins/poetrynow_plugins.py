"""poetrynow's servers as twistd plugins: ``twistd fastpoetry --poem kettle``.

This directory has no ``__init__.py`` on purpose: twistd finds plugins in every
``twisted/plugins`` directory on the path. The makers live in
:mod:`poetrynow.plugins`; this module only names them, so twistd's scan is cheap.
"""

from poetrynow.plugins import fastpoetry, poetryproxy, slowpoetry, transformedpoetry

__all__ = ["fastpoetry", "poetryproxy", "slowpoetry", "transformedpoetry"]
