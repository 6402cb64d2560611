"""API keys for both views: admins see every tenant's, tenant users only their own.

The same table and form serve ``/keys`` and ``/tenant/keys``; the role of the page's state
decides whose keys a query may touch, from the signed-in user, never from the browser.
A new key is shown once, in a dialog with a copy button, and is never stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import reflex as rx

from console import db
from console.auth import authorize, deny
from console.i18n import LangState, t, tr
from console.toolkit import (
    Column,
    Field,
    Filter,
    FormState,
    TableState,
    confirm_button,
    crud_layout,
    data_table,
    form_dialog,
)
from shared.errors import InvalidInputError
from shared.services import admin, catalog, listings
from shared.services.inputs import KeyInput, KeyModelsInput

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from shared.services.listings import ListQuery, Page
    from shared.services.users import Principal

__all__ = ("KeyFormBase", "KeyModelsFormBase", "KeysTableBase", "keys_view")


def split(text: str) -> list[str]:
    """Return the non-empty items of a comma-separated list."""
    return [item.strip() for item in text.split(",") if item.strip()]


class KeysTableBase(TableState, mixin=True):
    """Keys, with revoke."""

    _columns: ClassVar = (
        Column("id", "col.id", sortable=True),
        Column("tenant", "col.tenant"),
        Column("name", "keys.name", sortable=True),
        Column("prefix", "keys.prefix", "code"),
        Column("status", "col.status", "status"),
        Column("models", "col.models", "list"),
        Column("spent", "col.spent", "usd", sortable=True),
        Column("spend_limit", "keys.limit", "usd"),
        Column("created_at", "col.created", "time", sortable=True),
    )
    _filters: ClassVar = (
        Filter("q", "search"),
        Filter(
            "status", "col.status", (("active", "status.active"), ("revoked", "status.revoked"))
        ),
    )
    _default_sort = "id"
    _default_desc = True

    async def _fetch(self, session: AsyncSession, query: ListQuery, _who: Principal) -> Page:
        return await listings.list_keys(session, query)

    @rx.event
    async def revoke(self, key_id: str) -> Any:
        """Revoke a key (one of the signed-in tenant's own, for a tenant user)."""
        who = await authorize(self, self._role)
        if who is None:
            return deny(self)
        lang = (await self.get_state(LangState)).lang
        async with db.session() as session:
            await catalog.revoke_key(
                session, int(key_id), tenant_id=None if who.is_admin else who.tenant_id
            )
        await self._reload()
        return rx.toast.success(tr(lang, "keys.revoked"))


class KeyFormBase(FormState, mixin=True):
    """Create a key; the full key is kept here only until the dialog is closed."""

    new_key: str = ""
    tenants: list[str] = []  # noqa: RUF012 - Reflex copies state defaults per client
    available: str = ""

    _schema = KeyInput
    _hints: ClassVar = {"models": "form.models", "spend_limit": "form.usd"}

    async def _save(self, session: AsyncSession, data: KeyInput, who: Principal, lang: str) -> str:
        owner = data.tenant if who.is_admin else (who.tenant_name or "")
        if not owner:
            raise InvalidInputError(tr(lang, "form.required"))
        _, full = await admin.add_key(
            session,
            owner,
            name=data.name,
            models=split(data.models) or None,
            spend_limit=data.spend_limit or None,
            rpm_limit=int(data.rpm_limit) if data.rpm_limit else None,
        )
        self.new_key = full
        return tr(lang, "keys.created_once")

    @rx.event
    async def open_new(self) -> Any:
        """Open the form with the tenants (admins) and the models one may choose."""
        who = await authorize(self, self._role)
        if who is None:
            return deny(self)
        async with db.session() as session:
            self.tenants = await catalog.tenant_names(session) if who.is_admin else []
            models = await catalog.available_models(
                session, None if who.is_admin else who.tenant_id
            )
        self.available = ", ".join(models)
        self.values = {}
        self.errors = {}
        self.new_key = ""
        self.open = True
        return None

    @rx.event
    def dismiss_key(self) -> None:
        """Forget the new key once the user has copied it."""
        self.new_key = ""


class KeyModelsFormBase(FormState, mixin=True):
    """Replace a key's model allow-list."""

    _schema = KeyModelsInput
    _hints: ClassVar = {"models": "form.models"}

    async def _save(
        self, session: AsyncSession, data: KeyModelsInput, who: Principal, lang: str
    ) -> str:
        await catalog.set_key_models(
            session,
            self.editing,
            split(data.models) or None,
            tenant_id=None if who.is_admin else who.tenant_id,
        )
        return tr(lang, "keys.models_saved")

    @rx.event
    async def start_for(self, row: dict[str, str]) -> Any:
        """Open the form on one key's allow-list."""
        if await authorize(self, self._role) is None:
            return deny(self)
        models = row.get("models", "")
        self.values = {"models": "" if models == "—" else models}
        self.editing = int(row.get("id", "0"))
        self.errors = {}
        self.open = True
        return None


def _new_key_dialog(form: Any) -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title(t("keys.new")),
            rx.callout(t("keys.created_once"), icon="info", color_scheme="amber"),
            rx.hstack(
                rx.code(form.new_key, id="new-key", size="3", word_break="break-all"),
                rx.button(
                    rx.icon("copy", size=14),
                    t("keys.copy"),
                    on_click=[rx.set_clipboard(form.new_key), rx.toast(t("keys.copied"))],
                    size="1",
                    variant="soft",
                ),
                align="center",
                margin_y="1em",
            ),
            rx.hstack(
                rx.dialog.close(
                    rx.button(t("keys.done"), on_click=form.dismiss_key, id="key-done")
                ),
                justify="end",
            ),
            id="new-key-dialog",
        ),
        open=form.new_key != "",
    )


def keys_view(table: Any, form: Any, models_form: Any, *, tenant: bool) -> rx.Component:
    """Return the keys page for ``table``, ``form`` and ``models_form`` states."""
    columns = table._columns
    fields = [
        Field("name", "keys.name"),
        Field("models", "keys.models", hint="form.models"),
        Field("spend_limit", "keys.spend_limit"),
        Field("rpm_limit", "keys.rpm", kind="number"),
    ]
    if not tenant:
        fields.insert(0, Field("tenant", "col.tenant", kind="select", choices=form.tenants))

    def actions(row: rx.Var[dict[str, str]]) -> rx.Component:
        key_id = row["id"].to(str)
        return rx.cond(
            row["status"] == "active",
            rx.hstack(
                rx.button(
                    t("keys.edit_models"),
                    on_click=models_form.start_for(row),
                    size="1",
                    variant="soft",
                    color_scheme="gray",
                    id=f"models-{key_id}",
                ),
                confirm_button(
                    "keys.revoke",
                    "keys.revoke_confirm",
                    table.revoke(key_id),
                    button_id=f"revoke-{key_id}",
                ),
                spacing="1",
            ),
            rx.fragment(),
        )

    return crud_layout(
        "keys.title",
        rx.cond(
            form.available != "",
            rx.text(t("col.models"), ": ", form.available, size="1", color_scheme="gray"),
            rx.fragment(),
        ),
        data_table(table, columns, filters=table._filters, actions=actions),
        form_dialog(form, "keys.new", tuple(fields), submit_label="form.create"),
        form_dialog(
            models_form,
            "keys.edit_models",
            (Field("models", "keys.models", hint="form.models"),),
            dialog_id="models-dialog",
        ),
        _new_key_dialog(form),
        actions=[
            rx.button(rx.icon("plus", size=14), t("keys.new"), on_click=form.open_new, id="new")
        ],
        tenant=tenant,
    )
