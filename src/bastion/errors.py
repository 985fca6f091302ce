"""The one exception tree of Bastion.

Every denial in the request path is an exception, never a boolean someone can forget to
check. Each class carries what the client needs (HTTP status, machine ``code``, a short
``title``, its own response headers) and, separately, what only the audit log may see
(``reason``: the precise cause, e.g. ``"jwt.expired"``).

Exceptions become RFC 9457 ``application/problem+json`` in exactly one place:
:func:`bastion.gateway.problem.render_problem`.

::

    BastionError
    ├── ConfigError                    startup only, never rendered as HTTP
    ├── BadRequest              400    bad_request
    │   ├── ValidationFailed    400    validation_failed (carries ``errors``)
    │   └── RequestSmuggling    400    bad_request (ambiguous framing, path confusion)
    ├── Unauthorized            401    unauthorized
    │   └── InvalidToken        401    invalid_token  (RFC 6750 §3)
    ├── Forbidden               403    forbidden (function level)
    ├── NotFound                404    not_found
    │   └── ObjectNotFound      404    not_found (object level: existence does not leak)
    ├── MethodNotAllowed        405    method_not_allowed (Allow header)
    ├── RequestTimeout          408    request_timeout (the body did not arrive in time)
    ├── Gone                    410    gone (sunset version)
    ├── PayloadTooLarge         413    payload_too_large
    ├── UnsupportedMediaType    415    unsupported_media_type
    ├── TooManyRequests         429    rate_limited (Retry-After, RateLimit headers)
    ├── HeadersTooLarge         431    headers_too_large
    ├── InternalError           500    internal_error (generic; the cause is logged only)
    ├── BadGateway              502    bad_gateway
    ├── ServiceUnavailable      503    unavailable (fail closed: a dependency is down)
    └── GatewayTimeout          504    gateway_timeout
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

__all__ = [
    "BadGateway",
    "BadRequest",
    "BastionError",
    "ConfigError",
    "Forbidden",
    "GatewayTimeout",
    "Gone",
    "HeadersTooLarge",
    "InternalError",
    "InvalidToken",
    "MethodNotAllowed",
    "NotFound",
    "ObjectNotFound",
    "PayloadTooLarge",
    "RequestSmuggling",
    "RequestTimeout",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "UnsupportedMediaType",
    "ValidationFailed",
]


class BastionError(Exception):
    """Base of every Bastion error.

    ``detail`` is shown to the client and must never contain secrets or internals;
    ``reason`` is a machine-readable cause for the audit log only.
    """

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        reason: str | None = None,
        headers: Mapping[str, str] | None = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        self.detail = detail
        self.reason = reason or self.code
        self.headers: dict[str, str] = dict(headers or {})
        self.extensions: dict[str, Any] = dict(extensions or {})
        super().__init__(detail or self.title)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, reason={self.reason!r})"


class ConfigError(BastionError):
    """The configuration is invalid or insecure. Raised at startup, never per request.

    ``location`` names the file, line and key, e.g. ``bastion.yaml:12: apis[0].routes[1].allow``.
    """

    code = "config_error"
    title = "Invalid configuration"

    def __init__(self, message: str, *, location: str | None = None) -> None:
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)


class BadRequest(BastionError):
    status = 400
    code = "bad_request"
    title = "Bad request"


class ValidationFailed(BadRequest):
    """The request does not match the API contract. ``errors`` lists JSON pointers."""

    code = "validation_failed"
    title = "Request validation failed"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[Mapping[str, str]] = (),
        reason: str | None = None,
    ) -> None:
        super().__init__(detail, reason=reason, extensions={"errors": [dict(e) for e in errors]})


class RequestSmuggling(BadRequest):
    """Ambiguous message framing or path confusion: refused before anything else runs."""


class Unauthorized(BastionError):
    status = 401
    code = "unauthorized"
    title = "Authentication required"

    def __init__(
        self, detail: str | None = None, *, reason: str | None = None, scheme: str = "Bearer"
    ) -> None:
        super().__init__(detail, reason=reason, headers={"WWW-Authenticate": scheme})


class InvalidToken(Unauthorized):
    """Every token failure collapses into this one answer (RFC 6750 §3)."""

    code = "invalid_token"
    title = "Invalid token"

    def __init__(self, detail: str | None = None, *, reason: str | None = None) -> None:
        super().__init__(
            detail, reason=reason or "invalid_token", scheme='Bearer error="invalid_token"'
        )


class Forbidden(BastionError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(BastionError):
    status = 404
    code = "not_found"
    title = "Not found"


class ObjectNotFound(NotFound):
    """Object-level denial shown as 404 so that object existence does not leak."""


class MethodNotAllowed(BastionError):
    status = 405
    code = "method_not_allowed"
    title = "Method not allowed"

    def __init__(self, allowed: Sequence[str], *, reason: str | None = None) -> None:
        super().__init__(reason=reason, headers={"Allow": ", ".join(sorted(set(allowed)))})


class RequestTimeout(BastionError):
    status = 408
    code = "request_timeout"
    title = "Request timeout"

    def __init__(self, *, reason: str | None = None) -> None:
        super().__init__(reason=reason, headers={"Connection": "close"})


class Gone(BastionError):
    status = 410
    code = "gone"
    title = "Gone"


class PayloadTooLarge(BastionError):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"


class UnsupportedMediaType(BastionError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class TooManyRequests(BastionError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"

    def __init__(
        self,
        retry_after: float,
        *,
        reason: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        merged = {"Retry-After": str(max(1, int(retry_after + 0.999)))}
        merged.update(headers or {})
        super().__init__(reason=reason, headers=merged)
        self.retry_after = retry_after


class HeadersTooLarge(BastionError):
    status = 431
    code = "headers_too_large"
    title = "Request header fields too large"


class InternalError(BastionError):
    status = 500
    code = "internal_error"
    title = "Internal error"


class BadGateway(BastionError):
    status = 502
    code = "bad_gateway"
    title = "Bad gateway"


class ServiceUnavailable(BastionError):
    status = 503
    code = "unavailable"
    title = "Service unavailable"


class GatewayTimeout(BastionError):
    status = 504
    code = "gateway_timeout"
    title = "Gateway timeout"
