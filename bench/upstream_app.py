"""The fast upstream: a granian RSGI app answering fixed JSON bodies.

* ``POST /orders``: reads the request body, answers the ~2 KB order (with undeclared fields).
* anything else: a small fixed JSON item.

Run: ``python bench/upstream_app.py --port 9000``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import fixtures
import orjson

_HEADERS = [("content-type", "application/json")]
_ITEM = orjson.dumps(fixtures.ITEM_BODY)
_ORDER = orjson.dumps(fixtures.order_response())


async def app(scope: Any, proto: Any) -> None:
    """RSGI entry point."""
    if scope.method == "POST" and scope.path == "/orders":
        await proto()  # consume the request body like a real service
        proto.response_bytes(200, _HEADERS, _ORDER)
        return
    proto.response_bytes(200, _HEADERS, _ITEM)


def main() -> None:
    from granian import Granian
    from granian.constants import Interfaces

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    Granian(
        "upstream_app:app",
        address="127.0.0.1",
        port=args.port,
        interface=Interfaces.RSGI,
        workers=1,
        websockets=False,
        log_enabled=False,
        working_dir=Path(__file__).resolve().parent,
    ).serve()


if __name__ == "__main__":
    main()
