"""Synthetic audit-event streams for detector tests (shapes as event_from_context makes)."""

from __future__ import annotations

from typing import Any


def request(
    *,
    ip: str = "198.51.100.7",
    principal: str | None = "u-alice",
    status: int = 200,
    route: str | None = "/orders/{order_id}",
    path: str = "/orders/1",
    api: str = "shop",
    upstream: str | None = "shop",
    reason: str = "allowed",
    **extra: Any,
) -> dict[str, Any]:
    decision = "allow" if status < 400 else ("error" if status >= 500 else "deny")
    return {
        "event": "request",
        "request_id": "r-0000000000",
        "client_ip": ip,
        "method": "GET",
        "path": path,
        "api": api,
        "route": route,
        "status": status,
        "decision": decision,
        "reason": reason,
        "principal": principal,
        "upstream": upstream,
        "upstream_ms": 2.0 if upstream else None,
        "total_ms": 2.5,
        **extra,
    }


def normal_traffic(users: int = 20, per_user: int = 30) -> list[dict[str, Any]]:
    """Users reading their own few orders, an occasional typo (404) and expired token (401)."""
    events = []
    for u in range(users):
        for i in range(per_user):
            status = 404 if i % 17 == 0 else 200
            events.append(
                request(
                    ip=f"10.0.{u}.1",
                    principal=f"u-{u}",
                    status=status,
                    path=f"/orders/{u * 10 + i % 3}",
                )
            )
        events.append(
            request(ip=f"10.0.{u}.1", principal=None, status=401, reason="jwt.expired", route=None)
        )
    return events
