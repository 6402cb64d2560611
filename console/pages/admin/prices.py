"""Models and prices: USD per million input, cached input and output tokens."""

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
from shared.services.inputs import PriceInput

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from shared.services.listings import ListQuery, Page
    from shared.services.users import Principal

__all__ = ("PriceForm", "PricesTable", "prices_page")


class PricesTable(TableState, rx.State):
    """The price list."""

    _columns: ClassVar = (
        Column("model", "col.model", sortable=True),
        Column("input", "prices.input", "decimal", sortable=True),
        Column("cached_input", "prices.cached_input", "decimal"),
        Column("output", "prices.output", "decimal", sortable=True),
        Column("updated_at", "col.updated", "time"),
    )
    _filters: ClassVar = (Filter("q", "search"),)
    _default_sort = "model"

    async def _fetch(self, session: AsyncSession, query: ListQuery, _who: Principal) -> Page:
        return await listings.list_prices(session, query)

    @rx.event
    @guarded("admin")
    async def delete(self, model: str) -> Any:
        """Delete a model's price."""
        lang = (await self.get_state(LangState)).lang
        async with db.session() as session:
            await catalog.delete_price(session, model)
        await self._reload()
        return rx.toast.success(tr(lang, "prices.deleted"))


class PriceForm(FormState, rx.State):
    """Set (create or replace) a model's price."""

    _schema = PriceInput
    _hints: ClassVar = {"input": "form.usd", "output": "form.usd", "cached_input": "form.usd"}

    async def _save(
        self, session: AsyncSession, data: PriceInput, _who: Principal, lang: str
    ) -> str:
        await admin.set_price(
            session,
            data.model,
            input=data.input,
            output=data.output,
            cached_input=data.cached_input or None,
        )
        return tr(lang, "prices.saved")

    def _after(self) -> Any:
        return PricesTable.refresh

    @rx.event
    @guarded("admin")
    def start_edit(self, row: dict[str, str]) -> None:
        """Open the form on an existing price."""
        self.values = {
            key: ("" if row.get(key) == "—" else row.get(key, ""))
            for key in ("model", "input", "cached_input", "output")
        }
        self.errors = {}
        self.open = True


FIELDS = (
    Field("model", "col.model", placeholder="gpt-4o-mini"),
    Field("input", "prices.input", hint="form.usd"),
    Field("cached_input", "prices.cached_input"),
    Field("output", "prices.output", hint="form.usd"),
)


def _actions(row: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.hstack(
        rx.button(
            rx.icon("pencil", size=12),
            on_click=PriceForm.start_edit(row),
            size="1",
            variant="soft",
            color_scheme="gray",
        ),
        confirm_button(
            "channels.delete", "prices.delete_confirm", PricesTable.delete(row["model"])
        ),
        spacing="1",
    )


def prices_page() -> rx.Component:
    """Return the models and prices page."""
    return crud_layout(
        "prices.title",
        data_table(
            PricesTable, PricesTable._columns, filters=PricesTable._filters, actions=_actions
        ),
        form_dialog(PriceForm, "prices.new", FIELDS),
        actions=[
            rx.button(
                rx.icon("plus", size=14), t("prices.new"), on_click=PriceForm.start_new, id="new"
            )
        ],
    )
