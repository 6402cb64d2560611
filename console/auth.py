"""Who is signed in: the session cookie, the guard every event handler passes, and sign-out.

The session token lives in an HttpOnly, SameSite=Strict cookie that only the console's
own HTTP routes (:mod:`console.routes`) set. Reflex hands event handlers the headers of
the browser's websocket handshake, cookie included, server-side; :func:`authorize`
resolves the cookie against the database on **every** guarded event, so nothing the
browser keeps in its state can widen what it sees. A handshake whose ``Origin`` is not the
console's own host is refused, so another site cannot drive a signed-in browser.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from http.cookies import CookieError, SimpleCookie
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar
from urllib.parse import quote, urlsplit

import msgspec
import reflex as rx

from console import db
from shared.services import options, users
from shared.services.users import Principal

if TYPE_CHECKING:
    from collections.abc import Callable

logger = logging.getLogger(__name__)

__all__ = (
    "SESSION_COOKIE",
    "Guarded",
    "Role",
    "SessionState",
    "authorize",
    "deny",
    "guarded",
    "me",
    "session_token",
)

SESSION_COOKIE: Final = "tollgate_session"
Role = Literal["admin", "tenant", "any"]
F = TypeVar("F", bound="Callable[..., Any]")


def session_token(cookie_header: str) -> str:
    """Return the session token from a ``Cookie`` header, or an empty string."""
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(cookie_header or "")
    except CookieError:
        return ""
    morsel = jar.get(SESSION_COOKIE)
    return morsel.value if morsel else ""


def _same_origin(state: rx.State) -> bool:
    headers = state.router.headers
    origin = headers.origin
    if not origin:
        return True
    return urlsplit(origin).netloc.lower() == (headers.host or "").lower()


async def authorize(state: rx.State, role: Role) -> Principal | None:
    """Return the signed-in principal when it may act as ``role``, else None."""
    if not _same_origin(state):
        logger.warning("refused a console event from another origin")
        return None
    token = session_token(state.router.headers.cookie)
    if not token:
        return None
    async with db.session() as session:
        principal = await users.resolve_session(session, token)
    if principal is None:
        return None
    if role == "admin" and not principal.is_admin:
        return None
    if role == "tenant" and principal.tenant_id is None:
        return None
    return principal


def deny(state: rx.State) -> rx.event.EventSpec:
    """Return the redirect to the sign-in page, coming back to the current page after."""
    path = state.router.url.path or "/"
    return rx.redirect(f"/signin?next={quote(path, safe='/')}", replace=True)


def guarded(role: Role) -> Callable[[F], F]:
    """Make an event handler run only for a principal allowed to act as ``role``.

    The handler's state must derive from :class:`Guarded`; the handler finds the
    principal with :func:`me`. Anyone else is sent to the sign-in page and the handler
    does not run.
    """

    def decorate(fn: F) -> F:
        if inspect.isasyncgenfunction(fn):

            @functools.wraps(fn)
            async def stream(self: Any, *args: Any, **kwargs: Any) -> Any:
                principal = await authorize(self, role)
                if principal is None:
                    yield deny(self)
                    return
                self._who = msgspec.structs.asdict(principal)
                async for update in fn(self, *args, **kwargs):
                    yield update

            return stream  # type: ignore[return-value]

        @functools.wraps(fn)
        async def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            principal = await authorize(self, role)
            if principal is None:
                return deny(self)
            self._who = msgspec.structs.asdict(principal)
            result = fn(self, *args, **kwargs)
            return await result if inspect.isawaitable(result) else result

        return run  # type: ignore[return-value]

    return decorate


class Guarded(rx.State, mixin=True):
    """A state whose guarded handlers learn who called them."""

    _who: dict[str, Any] = {}  # noqa: RUF012 - Reflex copies state defaults per client


def me(state: Guarded) -> Principal:
    """Return the principal the running guarded handler was authorised for."""
    return Principal(**state._who)


class SessionState(rx.State):
    """The signed-in user as the shell shows it (display only, never trusted)."""

    username: str = ""
    role: str = ""
    tenant_name: str = ""
    site_name: str = "Tollgate"

    async def _check(self, role: Role) -> Any:
        principal = await authorize(self, role)
        if principal is None:
            anyone = await authorize(self, "any")
            if anyone is not None:
                return rx.redirect("/" if anyone.is_admin else "/tenant", replace=True)
            self.username = self.role = self.tenant_name = ""
            return deny(self)
        self.username = principal.username
        self.role = principal.role
        self.tenant_name = principal.tenant_name or ""
        async with db.session() as session:
            self.site_name = str((await options.read_settings(session))["site_name"])
        return None

    @rx.event
    async def check_admin(self) -> Any:
        """On load of an admin page: send everyone but admins elsewhere."""
        return await self._check("admin")

    @rx.event
    async def check_tenant(self) -> Any:
        """On load of a tenant page: send everyone but tenant users elsewhere."""
        return await self._check("tenant")

    @rx.event
    async def go_home(self) -> Any:
        """On load of ``/``-like entry points: send the user to the right home page."""
        principal = await authorize(self, "any")
        if principal is None:
            return deny(self)
        if not principal.is_admin:
            return rx.redirect("/tenant", replace=True)
        self.username = principal.username
        self.role = principal.role
        return None

    @rx.event
    def sign_out(self) -> Any:
        """Leave through the route that ends the session and clears the cookie."""
        return rx.call_script(f"window.location.assign({json.dumps('/auth/signout')})")
