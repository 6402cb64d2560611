"""Redeem a code into the signed-in tenant's balance; see the codes redeemed so far."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import reflex as rx

from console.i18n import t, tr
from console.toolkit import (
    Column,
    Field,
    FormState,
    TableState,
    crud_layout,
    data_table,
    field_input,
)
from shared.errors import NotFoundError
from shared.money import format_usd
from shared.services import listings, redeem
from shared.services.inputs import RedeemInput

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from shared.services.listings import ListQuery, Page
    from shared.services.users import Principal

__all__ = ("RedeemForm", "RedeemedTable", "redeem_page")


class RedeemedTable(TableState, rx.State):
    """Codes this tenant redeemed."""

    _role = "tenant"
    _columns: ClassVar = (
        Column("prefix", "codes.code", "code"),
        Column("amount", "col.amount", "usd"),
        Column("redeemed_at", "codes.redeemed_at", "time", sortable=True),
    )
    _default_sort = "redeemed_at"
    _default_desc = True

    async def _fetch(self, session: AsyncSession, query: ListQuery, _who: Principal) -> Page:
        return await listings.list_codes(session, query)


class RedeemForm(FormState, rx.State):
    """The code to redeem."""

    _role = "tenant"
    _schema = RedeemInput

    async def _save(
        self, session: AsyncSession, data: RedeemInput, who: Principal, lang: str
    ) -> str:
        try:
            amount = await redeem.redeem_code(
                session, who.tenant_id or 0, data.code, user_id=who.user_id
            )
        except NotFoundError:
            raise NotFoundError(tr(lang, "redeem.invalid")) from None
        self.editing += 1
        return tr(lang, "redeem.done", amount=format_usd(amount))

    def _after(self) -> Any:
        return RedeemedTable.refresh


def redeem_page() -> rx.Component:
    """Return the redeem page."""
    return crud_layout(
        "redeem.title",
        rx.card(
            rx.form(
                rx.hstack(
                    rx.box(field_input(RedeemForm, Field("code", "redeem.code")), flex="1"),
                    rx.button(
                        t("redeem.submit"), type="submit", loading=RedeemForm.loading, id="redeem"
                    ),
                    align="end",
                    width="100%",
                ),
                on_submit=RedeemForm.submit,
                reset_on_submit=True,
                key=RedeemForm.editing,
            ),
            max_width="40em",
        ),
        rx.heading(t("redeem.history"), size="4"),
        data_table(RedeemedTable, RedeemedTable._columns),
        tenant=True,
    )
