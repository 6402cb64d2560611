"""Request logs for both views, and a request's detail page.

Admins filter by tenant, key, model, channel, status and time; tenant users by key,
model, status and time, over their own requests only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import reflex as rx

from console import db
from console.auth import authorize, deny
from console.i18n import t
from console.toolkit import Column, Filter, TableState, crud_layout, data_table, display
from shared.services import reports

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from shared.services.listings import ListQuery, Page
    from shared.services.users import Principal

__all__ = ("LogDetailBase", "LogsTableBase", "log_detail_view", "logs_view")

STATUS_OPTIONS = tuple((s, f"status.{s}") for s in reports.LOG_STATUSES)
_USD_FIELDS = frozenset({"cost"})


class LogsTableBase(TableState, mixin=True):
    """Requests, newest first, 50 to a page by default."""

    _columns: ClassVar = (
        Column("created_at", "col.time", "time", sortable=True),
        Column("tenant", "col.tenant"),
        Column("key_id", "col.key", "number"),
        Column("model", "col.model"),
        Column("channel", "col.channel"),
        Column("status", "col.status", "status"),
        Column("http_status", "logs.http", "number"),
        Column("input_tokens", "logs.tokens_in", "number"),
        Column("output_tokens", "logs.tokens_out", "number"),
        Column("cost", "logs.cost", "usd"),
        Column("latency_ms", "logs.latency", "number"),
    )
    _filters: ClassVar = (
        Filter("tenant", "col.tenant"),
        Filter("key", "col.key"),
        Filter("model", "col.model"),
        Filter("channel", "col.channel"),
        Filter("status", "col.status", STATUS_OPTIONS),
        Filter("since", "logs.since", kind="datetime-local"),
        Filter("until", "logs.until", kind="datetime-local"),
    )
    _default_sort = "created_at"
    _default_desc = True

    async def _fetch(self, session: AsyncSession, query: ListQuery, _who: Principal) -> Page:
        return await reports.list_logs(session, query)


class LogDetailBase(TableState, mixin=True):
    """One request: every column, as field and value pairs."""

    fields: list[list[str]] = []  # noqa: RUF012 - Reflex copies state defaults per client
    found: bool = True

    @rx.event
    async def load_detail(self) -> Any:
        """Load the request named by ``?id=`` (one of the tenant's own, for a tenant)."""
        who = await authorize(self, self._role)
        if who is None:
            return deny(self)
        raw = self.router.url.query_parameters.get("id", "")
        detail = None
        if raw.isdigit():
            async with db.session() as session:
                detail = await reports.log_detail(
                    session, int(raw), tenant_id=None if who.is_admin else who.tenant_id
                )
        self.found = detail is not None
        self.fields = [
            [key, display(value, "usd" if key in _USD_FIELDS else "text")]
            for key, value in (detail or {}).items()
        ]
        return None


OPERATOR_ONLY = frozenset({"tenant", "channel"})
"""Columns and filters a tenant user does not get."""


def logs_view(table: Any, *, tenant: bool) -> rx.Component:
    """Return the logs page of ``table``."""
    columns = table._columns
    filters = table._filters
    base = "/tenant/logs" if tenant else "/logs"

    def actions(row: rx.Var[dict[str, str]]) -> rx.Component:
        return rx.link(
            rx.button(rx.icon("eye", size=12), size="1", variant="soft"),
            href=f"{base}/detail?id={row['id']}",
            id=f"detail-{row['id']}",
        )

    return crud_layout(
        "logs.title",
        data_table(table, columns, filters=filters, actions=actions, table_id="logs-table"),
        tenant=tenant,
    )


def log_detail_view(state: Any, *, tenant: bool) -> rx.Component:
    """Return the detail page of one request."""
    base = "/tenant/logs" if tenant else "/logs"
    return crud_layout(
        "logs.detail",
        rx.cond(
            state.found,
            rx.table.root(
                rx.table.header(
                    rx.table.row(
                        rx.table.column_header_cell(t("logs.field")),
                        rx.table.column_header_cell(t("logs.value")),
                    )
                ),
                rx.table.body(
                    rx.foreach(
                        state.fields,
                        lambda f: rx.table.row(
                            rx.table.cell(rx.code(f[0], variant="ghost")),
                            rx.table.cell(f[1], white_space="pre-wrap", word_break="break-all"),
                        ),
                    )
                ),
                variant="surface",
                size="1",
                id="log-detail",
            ),
            rx.callout(t("logs.not_found"), icon="search-x", id="log-missing"),
        ),
        rx.link(t("logs.back"), href=base),
        breadcrumbs=[("nav.logs", base)],
        tenant=tenant,
    )
