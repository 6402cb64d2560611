"""The sign-in page: checks the password, then hands the browser a one-time ticket.

The ticket goes to ``/auth/session``, which sets the HttpOnly session cookie; the
password never leaves this event handler and the cookie never passes through JavaScript.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import reflex as rx

from console import db
from console.auth import authorize
from console.components.shell import language_switch
from console.i18n import LangState, t, tr
from console.routes import safe_next
from console.toolkit import Field, field_input, translate_error
from shared.services import users
from shared.services.inputs import SignInInput, field_errors

__all__ = ("SignInState", "signin_page")


class SignInState(rx.State):
    """The sign-in form."""

    values: dict[str, str] = {}  # noqa: RUF012 - Reflex copies state defaults per client
    errors: dict[str, str] = {}  # noqa: RUF012 - Reflex copies state defaults per client
    message: str = ""
    loading: bool = False

    @rx.event
    async def load(self) -> Any:
        """Send a signed-in user home; say so when a sign-in ticket expired."""
        lang = (await self.get_state(LangState)).lang
        expired = self.router.url.query_parameters.get("expired") == "1"
        self.message = tr(lang, "signin.expired") if expired else ""
        who = await authorize(self, "any")
        if who is not None:
            return rx.redirect("/" if who.is_admin else "/tenant", replace=True)
        return None

    @rx.event
    async def submit(self, form: dict[str, Any]) -> Any:
        """Check the credentials; on success leave for the cookie route."""
        lang = (await self.get_state(LangState)).lang
        values = {
            "username": str(form.get("username", "")).strip(),
            "password": str(form.get("password", "")),
        }
        self.values = {"username": values["username"]}
        self.errors = {
            name: translate_error(message, lang)
            for name, message in field_errors(SignInInput, values).items()
        }
        if self.errors:
            return
        self.loading = True
        yield
        try:
            async with db.session() as session:
                ticket = await users.sign_in(
                    session,
                    values["username"],
                    values["password"],
                    self.router.session.client_ip or "unknown",
                )
        except users.SigninThrottledError as exc:
            self.message = tr(lang, "signin.throttled", seconds=exc.retry_after)
            self.loading = False
            return
        except users.AuthenticationError:
            self.message = tr(lang, "signin.wrong")
            self.loading = False
            return
        target = safe_next(self.router.url.query_parameters.get("next"))
        url = "/auth/session?" + urlencode({"ticket": ticket, "next": target})
        yield rx.call_script(f"window.location.assign({json.dumps(url)})")


def signin_page() -> rx.Component:
    """Return the sign-in page."""
    return rx.center(
        rx.card(
            rx.vstack(
                rx.hstack(
                    rx.icon("shield-check", size=26, color="var(--accent-9)"),
                    rx.heading("Tollgate", size="6"),
                    rx.spacer(),
                    language_switch(),
                    align="center",
                    width="100%",
                ),
                rx.heading(t("signin.title"), size="4", id="page-title"),
                rx.text(t("signin.subtitle"), size="2", color_scheme="gray"),
                rx.cond(
                    SignInState.message != "",
                    rx.callout(
                        SignInState.message,
                        icon="circle-alert",
                        color_scheme="red",
                        id="signin-message",
                        width="100%",
                    ),
                    rx.fragment(),
                ),
                rx.form(
                    rx.vstack(
                        field_input(SignInState, Field("username", "signin.username")),
                        field_input(
                            SignInState, Field("password", "signin.password", kind="password")
                        ),
                        rx.button(
                            t("signin.submit"),
                            type="submit",
                            width="100%",
                            loading=SignInState.loading,
                            id="signin",
                        ),
                        spacing="3",
                        width="100%",
                    ),
                    on_submit=SignInState.submit,
                    reset_on_submit=False,
                    width="100%",
                ),
                spacing="3",
                width="100%",
            ),
            width="24em",
            padding="1.5em",
        ),
        height="100vh",
        background="var(--gray-a2)",
    )
