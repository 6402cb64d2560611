"""Redemption codes: generate a batch (exported once, as CSV), void, see who redeemed."""

from __future__ import annotations

import csv
import datetime
import io
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
from shared.services import listings, redeem
from shared.services.inputs import CodeBatchInput

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from shared.services.listings import ListQuery, Page
    from shared.services.users import Principal

__all__ = ("CodeForm", "CodesTable", "codes_page")


class CodesTable(TableState, rx.State):
    """Codes and their redemptions."""

    _columns: ClassVar = (
        Column("id", "col.id", sortable=True),
        Column("batch", "codes.batch", sortable=True),
        Column("prefix", "codes.code", "code"),
        Column("amount", "col.amount", "usd"),
        Column("status", "col.status", "status", sortable=True),
        Column("redeemed_by", "codes.redeemed_by"),
        Column("redeemed_at", "codes.redeemed_at", "time", sortable=True),
        Column("expires_at", "keys.expires", "time"),
        Column("created_at", "col.created", "time"),
    )
    _filters: ClassVar = (
        Filter("batch", "codes.batch"),
        Filter(
            "status",
            "col.status",
            (("active", "status.active"), ("redeemed", "status.redeemed"), ("void", "status.void")),
        ),
        Filter("q", "search"),
    )
    _default_sort = "id"
    _default_desc = True

    async def _fetch(self, session: AsyncSession, query: ListQuery, _who: Principal) -> Page:
        return await listings.list_codes(session, query)

    @rx.event
    @guarded("admin")
    async def void(self, code_id: str) -> Any:
        """Void an unused code."""
        lang = (await self.get_state(LangState)).lang
        async with db.session() as session:
            await redeem.void_code(session, int(code_id))
        await self._reload()
        return rx.toast.success(tr(lang, "codes.voided"))


class CodeForm(FormState, rx.State):
    """Generate a batch; its codes stay here until downloaded or dismissed."""

    generated: list[str] = []  # noqa: RUF012 - Reflex copies state defaults per client
    csv_text: str = ""
    batch_name: str = ""

    _schema = CodeBatchInput
    _defaults: ClassVar = {"count": "10", "amount": "10"}
    _hints: ClassVar = {"batch": "form.name", "amount": "form.usd"}

    async def _save(
        self, session: AsyncSession, data: CodeBatchInput, _who: Principal, lang: str
    ) -> str:
        expires = None
        if data.expires_days:
            expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(
                days=int(data.expires_days)
            )
        codes = await redeem.generate_codes(
            session, data.batch, count=data.count, amount=data.amount, expires_at=expires
        )
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["batch", "code", "amount_usd", "expires_at"])
        for code in codes:
            writer.writerow(
                [data.batch, code.code, code.amount, expires.isoformat() if expires else ""]
            )
        self.generated = [code.code for code in codes]
        self.csv_text = buffer.getvalue()
        self.batch_name = data.batch
        return tr(lang, "codes.generated", count=len(codes))

    def _after(self) -> Any:
        return CodesTable.refresh

    @rx.event
    def download(self) -> Any:
        """Download the batch just generated as CSV."""
        return rx.download(data=self.csv_text, filename=f"codes-{self.batch_name}.csv")

    @rx.event
    def dismiss(self) -> None:
        """Forget the generated codes."""
        self.generated = []
        self.csv_text = ""


def _generated_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title(t("codes.generate")),
            rx.callout(t("keys.created_once"), icon="info", color_scheme="amber"),
            rx.scroll_area(
                rx.vstack(
                    rx.foreach(
                        CodeForm.generated, lambda c: rx.code(c, class_name="generated-code")
                    ),
                    spacing="1",
                ),
                max_height="16em",
                margin_y="1em",
            ),
            rx.hstack(
                rx.button(
                    rx.icon("download", size=14),
                    t("codes.export"),
                    on_click=CodeForm.download,
                    id="export",
                ),
                rx.dialog.close(
                    rx.button(
                        t("keys.done"), on_click=CodeForm.dismiss, variant="soft", id="codes-done"
                    )
                ),
                justify="end",
                spacing="2",
            ),
            id="codes-dialog",
        ),
        open=CodeForm.generated.length() > 0,
    )


def _actions(row: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.cond(
        row["status"] == "active",
        confirm_button("codes.void", "codes.void_confirm", CodesTable.void(row["id"])),
        rx.fragment(),
    )


def codes_page() -> rx.Component:
    """Return the redemption codes page."""
    return crud_layout(
        "codes.title",
        data_table(CodesTable, CodesTable._columns, filters=CodesTable._filters, actions=_actions),
        form_dialog(
            CodeForm,
            "codes.generate",
            (
                Field("batch", "codes.batch", hint="form.name"),
                Field("count", "codes.count", kind="number"),
                Field("amount", "codes.amount", hint="form.usd"),
                Field("expires_days", "codes.expires_days", kind="number"),
            ),
            submit_label="codes.generate",
        ),
        _generated_dialog(),
        actions=[
            rx.button(
                rx.icon("plus", size=14), t("codes.generate"), on_click=CodeForm.start_new, id="new"
            )
        ],
    )
