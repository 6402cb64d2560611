"""Console users: admins, and the users of each tenant."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import reflex as rx

from console import db
from console.auth import guarded, me
from console.i18n import LangState, t, tr
from console.toolkit import (
    Column,
    Field,
    Filter,
    FormState,
    TableState,
    crud_layout,
    data_table,
    form_dialog,
)
from shared.errors import InvalidInputError
from shared.services import catalog, listings, users
from shared.services.inputs import PasswordInput, UserInput

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from shared.services.listings import ListQuery, Page
    from shared.services.users import Principal

__all__ = ("PasswordForm", "UserForm", "UsersTable", "users_page")


class UsersTable(TableState, rx.State):
    """The user list."""

    _columns: ClassVar = (
        Column("id", "col.id", sortable=True),
        Column("username", "signin.username", sortable=True),
        Column("role", "users.role"),
        Column("tenant", "col.tenant"),
        Column("status", "col.status", "status"),
        Column("last_signin_at", "users.last_signin", "time", sortable=True),
        Column("created_at", "col.created", "time"),
    )
    _filters: ClassVar = (
        Filter("q", "search"),
        Filter("role", "users.role", (("admin", "role.admin"), ("tenant", "role.tenant"))),
    )

    async def _fetch(self, session: AsyncSession, query: ListQuery, _who: Principal) -> Page:
        return await listings.list_users(session, query)

    @rx.event
    @guarded("admin")
    async def set_status(self, user_id: str, status: str) -> Any:
        """Enable or disable a user (never oneself)."""
        lang = (await self.get_state(LangState)).lang
        if int(user_id) == me(self).user_id:
            return rx.toast.error(tr(lang, "users.self"))
        async with db.session() as session:
            await users.set_user_status(session, int(user_id), status)
        await self._reload()
        return rx.toast.success(
            tr(lang, "users.status_changed", status=tr(lang, f"status.{status}"))
        )


class UserForm(FormState, rx.State):
    """Create a user."""

    tenants: list[str] = []  # noqa: RUF012 - Reflex copies state defaults per client

    _schema = UserInput
    _hints: ClassVar = {"username": "form.name"}

    async def _save(
        self, session: AsyncSession, data: UserInput, _who: Principal, lang: str
    ) -> str:
        if data.role == "tenant" and not data.tenant:
            raise InvalidInputError(tr(lang, "users.tenant_hint"))
        await users.create_user(
            session,
            data.username,
            data.password,
            role=data.role,
            tenant=data.tenant if data.role == "tenant" else None,
        )
        return tr(lang, "users.created")

    def _after(self) -> Any:
        return UsersTable.refresh

    @rx.event
    @guarded("admin")
    async def open_new(self) -> None:
        """Open the form with the tenants to choose from."""
        async with db.session() as session:
            self.tenants = await catalog.tenant_names(session)
        self.values = {"role": "tenant"}
        self.errors = {}
        self.open = True


class PasswordForm(FormState, rx.State):
    """Set a user's password; the user's sessions end."""

    username: str = ""

    _schema = PasswordInput

    async def _save(
        self, session: AsyncSession, data: PasswordInput, _who: Principal, lang: str
    ) -> str:
        await users.set_password(session, self.username, data.password)
        return tr(lang, "form.saved")

    @rx.event
    @guarded("admin")
    def start_for(self, username: str) -> None:
        """Open the form for one user."""
        self.username = username
        self.values = {}
        self.errors = {}
        self.open = True


def _actions(row: rx.Var[dict[str, str]]) -> rx.Component:
    user_id = row["id"].to(str)
    return rx.hstack(
        rx.button(
            t("users.set_password"),
            on_click=PasswordForm.start_for(row["username"]),
            size="1",
            variant="soft",
            color_scheme="gray",
            id=f"password-{user_id}",
        ),
        rx.cond(
            row["status"] == "active",
            rx.button(
                t("users.disable"),
                on_click=UsersTable.set_status(user_id, "disabled"),
                size="1",
                variant="soft",
                color_scheme="orange",
            ),
            rx.button(
                t("users.enable"),
                on_click=UsersTable.set_status(user_id, "active"),
                size="1",
                variant="soft",
                color_scheme="green",
            ),
        ),
        spacing="1",
    )


def users_page() -> rx.Component:
    """Return the console users page."""
    return crud_layout(
        "users.title",
        data_table(UsersTable, UsersTable._columns, filters=UsersTable._filters, actions=_actions),
        form_dialog(
            UserForm,
            "users.new",
            (
                Field("username", "signin.username", hint="form.name"),
                Field("password", "signin.password", kind="password"),
                Field(
                    "role",
                    "users.role",
                    kind="select",
                    options=(("admin", "role.admin"), ("tenant", "role.tenant")),
                ),
                Field("tenant", "users.tenant_hint", kind="select", choices=UserForm.tenants),
            ),
            submit_label="form.create",
        ),
        form_dialog(
            PasswordForm,
            "users.set_password",
            (Field("password", "signin.password", kind="password", hint="users.password_hint"),),
            dialog_id="password-dialog",
        ),
        actions=[
            rx.button(
                rx.icon("plus", size=14), t("users.new"), on_click=UserForm.open_new, id="new"
            )
        ],
    )
