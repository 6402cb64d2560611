"""Plain HTTP routes beside the Reflex app: the session cookie's way in and out, and health.

``/auth/session`` exchanges a one-time sign-in ticket for the HttpOnly session cookie;
``/auth/signout`` ends the session and clears it. Both answer with a tiny page that wipes
the tab's Reflex client token (so a new user never inherits the previous one's state)
and moves on. Requests another site started (``Sec-Fetch-Site: cross-site``) are refused.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Final

from starlette.applications import Starlette
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from starlette.routing import Route

from console import db
from console.auth import SESSION_COOKIE, session_token
from shared.errors import NotFoundError
from shared.services import users

if TYPE_CHECKING:
    from starlette.requests import Request

logger = logging.getLogger(__name__)

__all__ = ("create_routes", "safe_next")

_PAGE: Final = (
    "<!doctype html><meta charset=utf-8><title>Tollgate</title>"
    "<script>try{{sessionStorage.clear()}}catch(e){{}}location.replace({target})</script>"
)
_NO_STORE: Final = {"cache-control": "no-store", "referrer-policy": "no-referrer"}


def safe_next(value: str | None, default: str = "/") -> str:
    """Return ``value`` when it is a path on this site, else ``default``."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    if any(ord(c) < 0x20 or c in "<>\"'`" for c in value):
        return default
    return value


def _leave(target: str) -> HTMLResponse:
    # Inside <script>, `</script>` would end the script whatever JSON says: escape < > &.
    literal = (
        json.dumps(target).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    )
    return HTMLResponse(_PAGE.format(target=literal), headers=_NO_STORE)


def _is_cross_site(request: Request) -> bool:
    return request.headers.get("sec-fetch-site", "") == "cross-site"


async def _session(request: Request) -> HTMLResponse | RedirectResponse | PlainTextResponse:
    if _is_cross_site(request):
        return PlainTextResponse("cross-site sign-in refused", status_code=403)
    ticket = request.query_params.get("ticket", "")
    target = safe_next(request.query_params.get("next"))
    try:
        async with db.session() as session:
            token = await users.exchange_ticket(session, ticket)
    except NotFoundError:
        return RedirectResponse("/signin?expired=1", status_code=303, headers=_NO_STORE)
    response = _leave(target)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(users.SESSION_MAX.total_seconds()),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def _signout(request: Request) -> HTMLResponse | RedirectResponse:
    if _is_cross_site(request):
        return RedirectResponse("/signin", status_code=303)
    token = session_token(request.headers.get("cookie", ""))
    async with db.session() as session:
        await users.sign_out(session, token)
    response = _leave("/signin")
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


async def _health(_request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def create_routes() -> Starlette:
    """Return the Starlette app Reflex mounts its own app under."""
    return Starlette(
        routes=[
            Route("/auth/session", _session, methods=["GET"]),
            Route("/auth/signout", _signout, methods=["GET"]),
            Route("/healthz", _health, methods=["GET"]),
        ]
    )
