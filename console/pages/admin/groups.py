"""Pricing groups: every price is multiplied by the group's ratio for its tenants."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import reflex as rx

from console import db
from console.auth import guarded
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
from shared.services import admin, catalog, listings
from shared.services.inputs import GroupInput

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from shared.services.listings import ListQuery, Page
    from shared.services.users import Principal

__all__ = ("GroupForm", "GroupsTable", "groups_page")


class GroupsTable(TableState, rx.State):
    """The group list."""

    _columns: ClassVar = (
        Column("id", "col.id", sortable=True),
        Column("name", "col.name", sortable=True),
        Column("ratio", "groups.ratio", "decimal", sortable=True),
        Column("tenants", "groups.tenants", "number"),
        Column("updated_at", "col.updated", "time"),
    )
    _filters: ClassVar = (Filter("q", "search"),)
    _default_sort = "name"

    async def _fetch(self, session: AsyncSession, query: ListQuery, _who: Principal) -> Page:
        return await listings.list_groups(session, query)

    @rx.event
    @guarded("admin")
    async def delete(self, group_id: str) -> Any:
        """Delete a group no tenant belongs to."""
        lang = (await self.get_state(LangState)).lang
        async with db.session() as session:
            await catalog.delete_group(session, int(group_id))
        await self._reload()
        return rx.toast.success(tr(lang, "groups.deleted"))


class GroupForm(FormState, rx.State):
    """Create or edit a group."""

    _schema = GroupInput
    _defaults: ClassVar = {"ratio": "1"}
    _hints: ClassVar = {"name": "form.name", "ratio": "form.format"}

    async def _save(
        self, session: AsyncSession, data: GroupInput, _who: Principal, lang: str
    ) -> str:
        if self.editing:
            await catalog.update_group(session, self.editing, name=data.name, ratio=data.ratio)
        else:
            await admin.add_group(session, data.name, data.ratio)
        return tr(lang, "groups.saved")

    def _after(self) -> Any:
        return GroupsTable.refresh

    @rx.event
    @guarded("admin")
    def start_edit(self, row: dict[str, str]) -> None:
        """Open the form on an existing group."""
        self.values = {"name": row.get("name", ""), "ratio": row.get("ratio", "1")}
        self.editing = int(row.get("id", "0"))
        self.errors = {}
        self.open = True


FIELDS = (
    Field("name", "col.name", hint="form.name"),
    Field("ratio", "groups.ratio", placeholder="0.8"),
)


def _actions(row: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.hstack(
        rx.button(
            rx.icon("pencil", size=12),
            on_click=GroupForm.start_edit(row),
            size="1",
            variant="soft",
            color_scheme="gray",
        ),
        confirm_button("channels.delete", "groups.delete_confirm", GroupsTable.delete(row["id"])),
        spacing="1",
    )


def groups_page() -> rx.Component:
    """Return the groups page."""
    return crud_layout(
        "groups.title",
        data_table(
            GroupsTable, GroupsTable._columns, filters=GroupsTable._filters, actions=_actions
        ),
        form_dialog(GroupForm, "groups.new", FIELDS),
        actions=[
            rx.button(
                rx.icon("plus", size=14), t("groups.new"), on_click=GroupForm.start_new, id="new"
            )
        ],
    )
