"""The roles the Twisted servers are built from, as in Twisted's own code.

A Service holds what is served (a poem, the transforms, the cache), a Factory
builds protocols, a Protocol only moves bytes. The twistd plugins and the
commands assemble the same classes.
"""

from zope.interface import Attribute, Interface


class IPoetryService(Interface):
    poem = Attribute("The poem's bytes, loaded when the service starts.")


class ITransformService(Interface):
    def transform(name, poem):
        """A Deferred that fires with the transformed poem's bytes, or fails: with TransformError
        (an unknown transform, one that failed on this poem), or with what broke the work."""


class IPoetryProxyService(Interface):
    def get_poem():
        """A cancellable Deferred that fires with the poem's bytes."""
