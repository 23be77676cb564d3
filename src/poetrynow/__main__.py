"""``python -m poetrynow`` is the ``poetrynow`` command."""

from poetrynow.cli.poetrynow import main

raise SystemExit(main())
