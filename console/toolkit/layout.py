"""``crud_layout``: title, breadcrumbs and action bar above a page's content, in the shell."""

from __future__ import annotations

from typing import TYPE_CHECKING

import reflex as rx

from console.components.shell import shell
from console.i18n import t

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ("crud_layout",)


def crud_layout(
    title: str,
    *children: rx.Component,
    actions: Sequence[rx.Component] = (),
    breadcrumbs: Sequence[tuple[str, str]] = (),
    tenant: bool = False,
) -> rx.Component:
    """Return a page: breadcrumbs (message key, href), a title, actions, then ``children``."""
    home = ("nav.home", "/tenant" if tenant else "/")
    trail: list[rx.Component] = []
    for label, href in (home, *breadcrumbs):
        trail.append(rx.link(t(label), href=href, size="1", color_scheme="gray"))
        trail.append(rx.icon("chevron-right", size=12, opacity=0.5))
    trail.append(rx.text(t(title), size="1"))
    return shell(
        rx.vstack(
            rx.hstack(*trail, spacing="1", align="center"),
            rx.hstack(
                rx.heading(t(title), size="6", id="page-title"),
                rx.spacer(),
                *actions,
                width="100%",
                align="center",
                spacing="2",
            ),
            *children,
            spacing="4",
            width="100%",
        ),
        tenant=tenant,
    )
