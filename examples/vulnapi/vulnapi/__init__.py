"""vulnapi: a deliberately vulnerable API (and its fixed twin) for testing the Bastion scanner.

Never deploy it. ``create_app(vulnerable=True)`` plants every vulnerability listed in
``examples/vulnapi/PLANTED.md``; ``create_app(vulnerable=False)`` is the fixed twin with the
same routes and the same data, and none of them.
"""

from vulnapi.app import create_app, fixed_app, vulnerable_app

__all__ = ["create_app", "fixed_app", "vulnerable_app"]
