"""Sign-out: a confirmation page and a CSRF-protected POST that ends the session and
revokes the refresh families (and their access tokens) the session produced."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from bastion.identity.http import read_form
from bastion.identity.pages import csrf, csrf_ok, error_page, page
from bastion.identity.service import IdentityService

__all__ = ["logout_get", "logout_post"]


async def logout_get(request: Request) -> Response:
    service: IdentityService = request.app.state.identity
    token, cookies = csrf(request, service)
    return page(
        "message.html",
        200,
        cookies,
        title="Sign out",
        message="End your session?",
        logout_form=True,
        action="logout",
        csrf=token,
    )


async def logout_post(request: Request) -> Response:
    service: IdentityService = request.app.state.identity
    form = await read_form(request)
    if not csrf_ok(request, service, form):
        return error_page("Your sign-out form expired. Please try again.")
    raw = request.cookies.get(service.sessions.settings.cookie_name)
    if raw:
        await service.logout(raw)
    return page(
        "message.html",
        200,
        [service.sessions.clear_cookie()],
        title="Signed out",
        message="You are signed out. Tokens issued in this session were revoked.",
    )
