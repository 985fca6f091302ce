"""The authorization endpoint with its server-rendered login (RFC 6749 §4.1.1-§4.1.2).

Order of checks (RFC 6749 §4.1.2.1, RFC 9700 §4.1): the client and its redirect URI are
validated first, and any failure there is shown on an error page, never redirected
(no open redirector). Everything after that is redirected back with ``error``, ``state``
and ``iss`` (RFC 9207 §2). PKCE S256 is mandatory (RFC 7636, RFC 9700 §2.1.1).

The login page works without JavaScript; forms carry a CSRF token bound to a
``__Host-`` cookie (double submit, keyed). Password failures, unknown users, lockout and
throttling all show one generic message. Second factor: a sealed, short-lived ticket
carries the half-finished login to the TOTP page; every code submitted with it is counted
against the account's failure budget before it is checked.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from bastion.identity.clients import MAX_CLIENT_ID, Client
from bastion.identity.http import Form, parse_params, read_form
from bastion.identity.oautherrors import InvalidRequest, OAuthError, UnsupportedResponseType
from bastion.identity.pages import csrf, csrf_ok, error_page, page, redirect
from bastion.identity.redirects import RedirectError, match_redirect_uri
from bastion.identity.rfc7636 import check_challenge
from bastion.identity.service import IdentityService
from bastion.identity.users import GENERIC_LOGIN_ERROR, LoginFailed, User
from bastion.jsonutil import JSONError, dumps, loads_strict

__all__ = ["authorize_get", "authorize_post", "mfa_post"]

_PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "resource",
)
_MFA_TICKET_TTL = 300


class PageError(Exception):
    """Shown on an error page (never redirected): the client or redirect URI is unusable."""


@dataclass(frozen=True, slots=True)
class AuthRequest:
    client: Client
    redirect_uri: str
    state: str | None
    scope: list[str]
    resource: str | None
    code_challenge: str
    params: list[tuple[str, str]]


async def _parse(service: IdentityService, form: Form) -> AuthRequest:
    """Validate an authorization request; PageError before the redirect URI is trusted."""
    client_id = form.get("client_id")
    client = (
        await service.clients.get(client_id)
        if client_id and len(client_id) <= MAX_CLIENT_ID
        else None
    )
    if client is None or client.disabled or "authorization_code" not in client.grant_types:
        raise PageError("The application is not registered for sign-in.")
    try:
        redirect_uri = match_redirect_uri(form.get("redirect_uri", ""), client.redirect_uris)
    except RedirectError:
        raise PageError("The redirect address is not registered for this application.") from None
    redirect_uri = form["redirect_uri"]
    state = form.get("state")
    params = [(k, form[k]) for k in _PARAMS if k in form] + [
        ("resource", r) for r in form.many("resource")
    ]
    try:
        if state is not None and len(state) > 1024:
            raise InvalidRequest("state is too long")
        if "request" in form or "request_uri" in form:
            raise InvalidRequest("request objects are not supported")
        if form.get("response_type") != "code":
            raise UnsupportedResponseType("only response_type=code is supported")
        challenge = check_challenge(form.get("code_challenge"), form.get("code_challenge_method"))
        scope = service.resolve_scope(client, form.get("scope"))
        resources = form.many("resource")
        service.resolve_audience(client, resources)
    except OAuthError as exc:
        raise _Redirected(redirect_uri, exc, state) from None
    return AuthRequest(
        client, redirect_uri, state, scope, resources[0] if resources else None, challenge, params
    )


class _Redirected(Exception):
    def __init__(self, redirect_uri: str, error: OAuthError, state: str | None) -> None:
        super().__init__(error.code)
        self.redirect_uri, self.error, self.state = redirect_uri, error, state


def _error_redirect(service: IdentityService, exc: _Redirected) -> Response:
    params = {"error": exc.error.code}
    if exc.error.detail:
        params["error_description"] = exc.error.detail
    if exc.state is not None:
        params["state"] = exc.state
    params["iss"] = service.settings.issuer
    return redirect(exc.redirect_uri, params)


def _mfa_required(service: IdentityService, client: Client, user: User) -> bool:
    return service.settings.mfa.enforce or client.require_mfa or user.mfa_enrolled


async def _finish(
    service: IdentityService, req: AuthRequest, user_id: str, session_hash: str, cookies: list[str]
) -> Response:
    code = await service.grants.create_code(
        client_id=req.client.client_id,
        user_id=user_id,
        session_hash=session_hash,
        redirect_uri=req.redirect_uri,
        scope=" ".join(req.scope),
        resource=req.resource,
        code_challenge=req.code_challenge,
        now=service.clock(),
    )
    params = {"code": code}
    if req.state is not None:
        params["state"] = req.state
    params["iss"] = service.settings.issuer
    return redirect(req.redirect_uri, params, cookies)


#: The sign-in form's address as seen from /authorize/mfa.
_FROM_MFA = "../authorize"


def _login_page(
    service: IdentityService,
    req: AuthRequest,
    token: str,
    cookies: list[str],
    error: str | None = None,
    username: str = "",
    status: int = 200,
    action: str = "authorize",
) -> Response:
    """The sign-in form; ``action`` is relative to the page's own address (``../authorize``
    from /authorize/mfa, where "authorize" pointed at /authorize/authorize: a 404)."""
    return page(
        "login.html",
        status,
        cookies,
        title="Sign in",
        client_name=req.client.name,
        action=action,
        csrf=token,
        params=req.params,
        username=username,
        max_password=service.settings.passwords.max_length,
        error=error,
    )


async def authorize_get(request: Request) -> Response:
    service: IdentityService = request.app.state.identity
    try:
        form = parse_params(request.url.query)
        req = await _parse(service, form)
    except PageError as exc:
        return error_page(str(exc))
    except OAuthError as exc:
        return error_page(exc.detail or "The request is malformed.")
    except _Redirected as exc:
        return _error_redirect(service, exc)
    now = service.clock()
    session = await service.sessions.get(
        request.cookies.get(service.sessions.settings.cookie_name), now
    )
    if session is not None:
        user = await service.users.get(session.user_id)
        if (
            user is not None
            and not user.disabled
            and (session.mfa or not _mfa_required(service, req.client, user))
        ):
            return await _finish(service, req, user.id, session.id_hash, [])
    token, cookies = csrf(request, service)
    return _login_page(service, req, token, cookies)


async def _parse_post(request: Request) -> tuple[IdentityService, Form, AuthRequest | Response]:
    service: IdentityService = request.app.state.identity
    form = await read_form(request)
    try:
        return service, form, await _parse(service, form)
    except PageError as exc:
        return service, form, error_page(str(exc))
    except _Redirected as exc:
        return service, form, _error_redirect(service, exc)


async def authorize_post(request: Request) -> Response:
    service, form, parsed = await _parse_post(request)
    if isinstance(parsed, Response):
        return parsed
    req = parsed
    token, cookies = csrf(request, service)
    if not csrf_ok(request, service, form):
        return _login_page(
            service, req, token, cookies, "Your sign-in form expired. Please try again.", status=400
        )
    username = form.get("username", "")
    now = service.clock()
    try:
        user = await service.users.authenticate(username, form.get("password", ""), now)
    except LoginFailed as failure:
        service.audit.emit(
            "login.failure",
            cause=failure.reason,
            user=failure.user_id,
            client_id=req.client.client_id,
        )
        if failure.reason == "login.locked_now":
            service.audit.emit("login.locked", user=failure.user_id)
        return _login_page(service, req, token, cookies, GENERIC_LOGIN_ERROR, username[:128], 401)
    if _mfa_required(service, req.client, user):
        if not user.mfa_enrolled:
            service.audit.emit("login.failure", cause="mfa.not_enrolled", user=user.id)
            return error_page(
                "Two-step verification is required for this account but is not "
                "set up. Please contact your administrator.",
                403,
            )
        ticket = service.sealer.seal(
            dumps({"u": user.id, "exp": now + _MFA_TICKET_TTL, "c": token}), "mfa-ticket"
        )
        return page(
            "mfa.html",
            200,
            cookies,
            title="Two-step verification",
            action="authorize/mfa",
            csrf=token,
            ticket=ticket,
            params=req.params,
        )
    await service.users.reset_failures(user.id)
    raw, session = await service.sessions.create(user.id, mfa=False, now=now)
    service.audit.emit("login.success", user=user.id, client_id=req.client.client_id, mfa=False)
    return await _finish(
        service, req, user.id, session.id_hash, [*cookies, service.sessions.cookie(raw)]
    )


async def mfa_post(request: Request) -> Response:
    service, form, parsed = await _parse_post(request)
    if isinstance(parsed, Response):
        return parsed
    req = parsed
    token, cookies = csrf(request, service)
    now = service.clock()
    try:
        ticket = loads_strict(service.sealer.open(form.get("mfa_ticket", ""), "mfa-ticket"))
    except (ValueError, JSONError):
        ticket = None
    if (
        not csrf_ok(request, service, form)
        or not isinstance(ticket, dict)
        or ticket.get("c") != token
        or not isinstance(ticket.get("exp"), float | int)
        or ticket["exp"] <= now
    ):
        return _login_page(
            service,
            req,
            token,
            cookies,
            "Your sign-in expired. Please try again.",
            status=400,
            action=_FROM_MFA,
        )
    user = await service.users.get(str(ticket.get("u")))
    if user is None or user.disabled or user.mfa_seed is None:
        return _login_page(
            service, req, token, cookies, GENERIC_LOGIN_ERROR, status=401, action=_FROM_MFA
        )
    # The guess is counted before the code is checked (one guarded UPDATE), so a burst of
    # codes on one ticket gets no more checks than the same codes sent one by one.
    try:
        attempt = await service.users.reserve_attempt(user.id, now)
    except LoginFailed:
        return _login_page(
            service, req, token, cookies, GENERIC_LOGIN_ERROR, status=401, action=_FROM_MFA
        )
    if not await service.totp.verify(user.id, user.mfa_seed, form.get("otp", ""), now):
        service.audit.emit("mfa.failure", user=user.id, client_id=req.client.client_id)
        if attempt.locks:
            service.audit.emit("login.locked", user=user.id)
            return _login_page(
                service, req, token, cookies, GENERIC_LOGIN_ERROR, status=401, action=_FROM_MFA
            )
        return page(
            "mfa.html",
            401,
            cookies,
            title="Two-step verification",
            action="mfa",
            csrf=token,
            ticket=form.get("mfa_ticket", ""),
            params=req.params,
            error="The code is not valid. Please try again.",
        )
    await service.users.reset_failures(user.id)
    raw, session = await service.sessions.create(user.id, mfa=True, now=now)
    service.audit.emit("mfa.success", user=user.id)
    service.audit.emit("login.success", user=user.id, client_id=req.client.client_id, mfa=True)
    return await _finish(
        service, req, user.id, session.id_hash, [*cookies, service.sessions.cookie(raw)]
    )
