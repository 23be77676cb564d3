"""``poetrynow lab``: the loop, live, in a browser page.

The page picks engines and servers, and each engine's run is one real ``get-poetry``
against real ``slowpoetry`` servers, as the command line does (:mod:`.runs`); their
events (``--json``) go to the page as they come, by Server-Sent Events
(:mod:`.site`), where a lane per task fills while the bytes arrive. The lab listens on
127.0.0.1 and refuses what a token or an Origin says is not its own page
(:mod:`.guard`); everything the page needs ships in :mod:`.page`.
"""
