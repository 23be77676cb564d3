"""A relay with faults in front of any TCP server, toxiproxy's way (issue 25): ``poetrynow faults``.

:mod:`~poetrynow.relay.toxics` describes the toxics (toxiproxy's JSON and
rules), :mod:`~poetrynow.relay.stages` what each does to the bytes,
:mod:`~poetrynow.relay.relay` the relays, and :mod:`~poetrynow.relay.testing`
the helper for test suites.
"""

from poetrynow.relay.relay import Relay
from poetrynow.relay.relays import Relays
from poetrynow.relay.toxics import TOXIC_TYPES, ApiError, Toxic, make_toxic, updated_toxic

__all__ = ["TOXIC_TYPES", "ApiError", "Relay", "Relays", "Toxic", "make_toxic", "updated_toxic"]
