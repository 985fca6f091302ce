"""The ``bastion demo`` upstream: a deliberately naive shop API and its OpenAPI contract."""

from __future__ import annotations

from bastion.demo.shop import DEMO_USERS, SHOP_OPENAPI_PATH, DemoUser, create_shop_app

__all__ = ["DEMO_USERS", "SHOP_OPENAPI_PATH", "DemoUser", "create_shop_app"]
