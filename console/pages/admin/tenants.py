"""Tenants: create, suspend, and adjust balances through the ledger with a reason."""

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
from shared.money import format_usd
from shared.services import admin, catalog, listings, options
from shared.services.inputs import AdjustmentInput, TenantInput

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from shared.services.listings import ListQuery, Page
    from shared.services.users import Principal

__all__ = ("AdjustForm", "LedgerTable", "TenantForm", "TenantsTable", "ledger_page", "tenants_page")


class TenantsTable(TableState, rx.State):
    """The tenant list."""

    _columns: ClassVar = (
        Column("id", "col.id", sortable=True),
        Column("name", "col.name", sortable=True),
        Column("group", "col.group"),
        Column("balance", "col.balance", "usd", sortable=True),
        Column("held", "col.held", "usd"),
        Column("keys", "tenants.keys", "number"),
        Column("status", "col.status", "status"),
        Column("created_at", "col.created", "time", sortable=True),
    )
    _filters: ClassVar = (
        Filter("q", "search"),
        Filter(
            "status", "col.status", (("active", "status.active"), ("suspended", "status.suspended"))
        ),
    )

    async def _fetch(self, session: AsyncSession, query: ListQuery, _who: Principal) -> Page:
        return await listings.list_tenants(session, query)

    @rx.event
    @guarded("admin")
    async def set_status(self, tenant_id: str, status: str) -> Any:
        """Suspend or activate a tenant."""
        lang = (await self.get_state(LangState)).lang
        async with db.session() as session:
            await catalog.set_tenant_status(session, int(tenant_id), status)
        await self._reload()
        return rx.toast.success(
            tr(lang, "tenants.status_changed", status=tr(lang, f"status.{status}"))
        )


class TenantForm(FormState, rx.State):
    """Create a tenant."""

    groups: list[str] = []  # noqa: RUF012 - Reflex copies state defaults per client

    _schema = TenantInput
    _hints: ClassVar = {"name": "form.name", "balance": "form.usd"}

    async def _save(
        self, session: AsyncSession, data: TenantInput, _who: Principal, lang: str
    ) -> str:
        await admin.add_tenant(session, data.name, balance=data.balance, group=data.group)
        return tr(lang, "tenants.created")

    def _after(self) -> Any:
        return TenantsTable.refresh

    @rx.event
    @guarded("admin")
    async def open_new(self) -> None:
        """Open the form with the groups to choose from and the configured defaults."""
        async with db.session() as session:
            self.groups = await catalog.group_names(session)
            settings = await options.read_settings(session)
        default_group = str(settings["default_group"])
        if default_group not in self.groups:
            self.groups = [default_group, *self.groups]
        self.values = {"group": default_group, "balance": str(settings["signup_balance"])}
        self.errors = {}
        self.open = True


class AdjustForm(FormState, rx.State):
    """Add or deduct money, with a reason written to the ledger."""

    tenant: str = ""

    _schema = AdjustmentInput
    _hints: ClassVar = {"amount": "form.usd"}

    async def _save(
        self, session: AsyncSession, data: AdjustmentInput, who: Principal, lang: str
    ) -> str:
        note = f"{data.reason} (by {who.username})"
        balance = await admin.credit_tenant(session, self.tenant, data.amount, note=note)
        return tr(lang, "tenants.adjusted", balance=format_usd(balance))

    def _after(self) -> Any:
        return TenantsTable.refresh

    @rx.event
    @guarded("admin")
    def start_for(self, tenant: str) -> None:
        """Open the form for one tenant."""
        self.tenant = tenant
        self.values = {}
        self.errors = {}
        self.open = True


class LedgerTable(TableState, rx.State):
    """Every ledger entry, newest first."""

    _columns: ClassVar = (
        Column("id", "col.id", sortable=True),
        Column("created_at", "col.time", "time"),
        Column("tenant", "col.tenant"),
        Column("kind", "ledger.kind"),
        Column("amount", "col.amount", "usd", sortable=True),
        Column("balance_after", "ledger.balance_after", "usd"),
        Column("reference", "ledger.reference"),
        Column("note", "ledger.note"),
    )
    _filters: ClassVar = (
        Filter("tenant", "col.tenant"),
        Filter(
            "kind",
            "ledger.kind",
            tuple((k, f"kind.{k}") for k in ("topup", "charge", "adjustment", "redeem")),
        ),
    )
    _default_sort = "id"
    _default_desc = True

    async def _fetch(self, session: AsyncSession, query: ListQuery, _who: Principal) -> Page:
        return await listings.list_ledger(session, query)


def _actions(row: rx.Var[dict[str, str]]) -> rx.Component:
    tenant_id = row["id"].to(str)
    return rx.hstack(
        rx.button(
            t("tenants.adjust"),
            on_click=AdjustForm.start_for(row["name"]),
            size="1",
            variant="soft",
            id=f"adjust-{tenant_id}",
        ),
        rx.link(
            rx.button(t("tenants.ledger"), size="1", variant="soft", color_scheme="gray"),
            href=f"/ledger?f_tenant={row['name']}",
        ),
        rx.cond(
            row["status"] == "active",
            confirm_button(
                "tenants.suspend",
                "tenants.suspend_confirm",
                TenantsTable.set_status(tenant_id, "suspended"),
                color="orange",
            ),
            rx.button(
                t("tenants.activate"),
                on_click=TenantsTable.set_status(tenant_id, "active"),
                size="1",
                variant="soft",
                color_scheme="green",
            ),
        ),
        spacing="1",
    )


def tenants_page() -> rx.Component:
    """Return the tenants page."""
    return crud_layout(
        "tenants.title",
        data_table(
            TenantsTable, TenantsTable._columns, filters=TenantsTable._filters, actions=_actions
        ),
        form_dialog(
            TenantForm,
            "tenants.new",
            (
                Field("name", "col.name", hint="form.name"),
                Field("group", "col.group", kind="select", choices=TenantForm.groups),
                Field("balance", "tenants.opening_balance", hint="form.usd"),
            ),
        ),
        form_dialog(
            AdjustForm,
            "tenants.adjust",
            (
                Field("amount", "tenants.adjust_amount", placeholder="10.00"),
                Field("reason", "tenants.reason"),
            ),
            dialog_id="adjust-dialog",
        ),
        actions=[
            rx.button(
                rx.icon("plus", size=14), t("tenants.new"), on_click=TenantForm.open_new, id="new"
            )
        ],
    )


def ledger_page() -> rx.Component:
    """Return the ledger page."""
    return crud_layout(
        "tenants.ledger",
        data_table(LedgerTable, LedgerTable._columns, filters=LedgerTable._filters),
        breadcrumbs=[("nav.tenants", "/tenants")],
    )
