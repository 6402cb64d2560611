"""The frame of every signed-in page: navigation, language switch, user and sign-out."""

from __future__ import annotations

from typing import Final

import reflex as rx

from console.auth import SessionState
from console.i18n import LangState, t

__all__ = ("ADMIN_NAV", "TENANT_NAV", "language_switch", "shell")

ADMIN_NAV: Final = (
    ("/", "nav.dashboard", "layout-dashboard"),
    ("/channels", "nav.channels", "cable"),
    ("/prices", "nav.prices", "tags"),
    ("/groups", "nav.groups", "layers"),
    ("/tenants", "nav.tenants", "building-2"),
    ("/keys", "nav.keys", "key-round"),
    ("/codes", "nav.codes", "ticket"),
    ("/logs", "nav.logs", "scroll-text"),
    ("/users", "nav.users", "users"),
    ("/settings", "nav.settings", "settings"),
)
TENANT_NAV: Final = (
    ("/tenant", "nav.overview", "wallet"),
    ("/tenant/keys", "nav.keys", "key-round"),
    ("/tenant/usage", "nav.usage", "chart-column"),
    ("/tenant/logs", "nav.logs", "scroll-text"),
    ("/tenant/redeem", "nav.redeem", "ticket"),
)


def language_switch() -> rx.Component:
    """Return the English / 简体中文 switch."""
    return rx.select.root(
        rx.select.trigger(variant="ghost", id="language"),
        rx.select.content(
            rx.select.item("English", value="en", id="language-en"),
            rx.select.item("简体中文", value="zh", id="language-zh"),
        ),
        value=LangState.lang,
        on_change=LangState.set_lang,
        size="1",
    )


def _nav_link(href: str, label: str, icon: str) -> rx.Component:
    return rx.link(
        rx.hstack(rx.icon(icon, size=16), rx.text(t(label), size="2"), align="center"),
        href=href,
        underline="none",
        color_scheme="gray",
        high_contrast=True,
        padding="0.4em 0.6em",
        border_radius="6px",
        _hover={"background": "var(--gray-a3)"},
        id=f"nav-{href.strip('/').replace('/', '-') or 'home'}",
    )


def _sidebar(nav: tuple[tuple[str, str, str], ...], heading: str) -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.icon("shield-check", size=22, color="var(--accent-9)"),
            rx.heading(SessionState.site_name, size="4", id="site-name"),
            align="center",
            padding_bottom="0.5em",
        ),
        rx.text(t(heading), size="1", color_scheme="gray", weight="bold"),
        *[_nav_link(*item) for item in nav],
        spacing="1",
        padding="1em",
        min_width="13em",
        height="100vh",
        position="sticky",
        top="0",
        border_right="1px solid var(--gray-a5)",
        background="var(--gray-a2)",
    )


def shell(*children: rx.Component, tenant: bool = False) -> rx.Component:
    """Return ``children`` inside the navigation frame of an admin or a tenant page."""
    nav = TENANT_NAV if tenant else ADMIN_NAV
    heading = "nav.tenant" if tenant else "nav.admin"
    top = rx.hstack(
        rx.cond(
            SessionState.tenant_name != "",
            rx.badge(SessionState.tenant_name, variant="soft", id="tenant-name"),
            rx.fragment(),
        ),
        rx.spacer(),
        rx.icon("languages", size=16),
        language_switch(),
        rx.separator(orientation="vertical", size="1"),
        rx.text(SessionState.username, size="2", id="current-user"),
        rx.button(
            rx.icon("log-out", size=14),
            t("shell.signout"),
            on_click=SessionState.sign_out,
            variant="soft",
            size="1",
            id="signout",
        ),
        align="center",
        spacing="3",
        width="100%",
        padding="0.75em 1.5em",
        border_bottom="1px solid var(--gray-a5)",
    )
    return rx.hstack(
        _sidebar(nav, heading),
        rx.vstack(
            top,
            rx.box(*children, padding="1.5em", width="100%"),
            spacing="0",
            width="100%",
            min_width="0",
        ),
        spacing="0",
        width="100%",
        align="start",
    )
