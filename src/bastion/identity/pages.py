"""Server-rendered pages of the token service: rendering, redirects and CSRF.

Pages are Jinja2 templates with autoescaping, sent with a strict CSP (no script at all),
``frame-ancestors 'none'`` and ``Cache-Control: no-store``. The CSRF token of a form is
the keyed HMAC of a random ``__Host-`` cookie (SameSite=Strict) that only this site can
read, so a cross-site form post cannot carry a matching pair.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from bastion.identity.http import Form
from bastion.identity.sealing import new_token
from bastion.identity.service import IdentityService

__all__ = ["CSRF_COOKIE", "PAGE_HEADERS", "csrf", "csrf_ok", "error_page", "page", "redirect"]

CSRF_COOKIE = "__Host-bastion-csrf"
_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def page(
    template: str, status: int = 200, cookies: list[str] | None = None, **ctx: Any
) -> Response:
    ctx.setdefault("error", None)
    html = _ENV.get_template(template).render(**ctx)
    response = HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)
    for cookie in cookies or []:
        response.headers.append("set-cookie", cookie)
    return response


def error_page(message: str, status: int = 400) -> Response:
    return page("message.html", status, title="Cannot continue", message=message)


def redirect(uri: str, params: dict[str, str], cookies: list[str] | None = None) -> Response:
    separator = "&" if "?" in uri else "?"
    response = RedirectResponse(uri + separator + urlencode(params), status_code=303)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    for cookie in cookies or []:
        response.headers.append("set-cookie", cookie)
    return response


def csrf(request: Request, service: IdentityService) -> tuple[str, list[str]]:
    """The CSRF token for this browser, and a Set-Cookie if the binding cookie is new."""
    binding = request.cookies.get(CSRF_COOKIE)
    cookies: list[str] = []
    if not binding or len(binding) > 64:
        binding = new_token(24)
        cookies.append(f"{CSRF_COOKIE}={binding}; Path=/; Secure; HttpOnly; SameSite=Strict")
    return service.sealer.csrf(binding), cookies


def csrf_ok(request: Request, service: IdentityService, form: Form) -> bool:
    binding = request.cookies.get(CSRF_COOKIE)
    token = form.get("csrf_token", "")
    return bool(binding) and service.sealer.csrf_ok(str(binding), token)
