"""Static client IP allow and deny lists (CIDR), globally or per API.

Matched against the client IP as the gateway determined it (trusted-proxy aware). The deny
list wins over the allow list; an empty allow list allows everyone. For blocks decided at
run time (incidents), see :mod:`bastion.policies.blocklist`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from bastion.errors import Forbidden
from bastion.types import Policy, RequestContext, Response

__all__ = ["IpFilterPolicy"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class IpFilterPolicy(Policy):
    name = "ip_filter"

    def __init__(self, allow: Sequence[str], deny: Sequence[str]) -> None:
        self.allow: tuple[Network, ...] = tuple(
            ipaddress.ip_network(c, strict=False) for c in allow
        )
        self.deny: tuple[Network, ...] = tuple(ipaddress.ip_network(c, strict=False) for c in deny)

    async def on_request(self, ctx: RequestContext) -> Response | None:
        try:
            ip = ipaddress.ip_address(ctx.client_ip)
        except ValueError:
            raise Forbidden(reason="ip_filter.unparsable") from None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self.deny):
            raise Forbidden(reason="ip_filter.denied")
        if self.allow and not any(ip in net for net in self.allow):
            raise Forbidden(reason="ip_filter.not_allowed")
        return None
