"""The tenant's home: balance, this month's spend and a usage chart."""

from __future__ import annotations

from typing import Any

import reflex as rx

from console import db
from console.auth import Guarded, guarded, me
from console.components.charts import series_block
from console.toolkit import crud_layout, stat_card
from shared.money import format_usd
from shared.services import reports

__all__ = ("OverviewState", "UsageState", "overview_page", "usage_page")


class OverviewState(Guarded, rx.State):
    """The signed-in tenant's figures."""

    figures: dict[str, str] = {}  # noqa: RUF012 - Reflex copies state defaults per client
    series: list[dict[str, Any]] = []  # noqa: RUF012 - Reflex copies state defaults per client

    @rx.event
    @guarded("tenant")
    async def load(self) -> None:
        """Read balance, month and the last 30 days of the tenant's own usage."""
        tenant_id = me(self).tenant_id
        async with db.session() as session:
            overview = await reports.tenant_overview(session, tenant_id or 0)
            board = await reports.dashboard(session, "30d", tenant_id=tenant_id)
        self.figures = {
            "name": overview.name,
            "group": overview.group,
            "balance": format_usd(overview.balance),
            "available": format_usd(overview.balance - overview.held),
            "month_spend": format_usd(overview.month_spend),
            "month_requests": f"{overview.month_requests:,}",
            "month_tokens": f"{overview.month_tokens:,}",
            "keys": str(overview.active_keys),
        }
        self.series = board.series


class UsageState(Guarded, rx.State):
    """The tenant's usage by day and by model."""

    range: str = "30d"
    series: list[dict[str, Any]] = []  # noqa: RUF012 - Reflex copies state defaults per client
    by_model: list[dict[str, Any]] = []  # noqa: RUF012 - Reflex copies state defaults per client

    @rx.event
    @guarded("tenant")
    async def load(self) -> None:
        """Aggregate the tenant's own requests over the range in the URL."""
        wanted = self.router.url.query_parameters.get("range", "30d")
        self.range = wanted if wanted in ("7d", "30d") else "30d"
        async with db.session() as session:
            board = await reports.dashboard(session, self.range, tenant_id=me(self).tenant_id)
        self.series = board.series
        self.by_model = board.by_model

    @rx.event
    def set_range(self, value: str) -> Any:
        """Show another range (kept in the URL)."""
        return rx.redirect(f"/tenant/usage?range={value}", replace=True)


def overview_page() -> rx.Component:
    """Return the tenant's overview."""
    figures = OverviewState.figures
    return crud_layout(
        "overview.title",
        rx.flex(
            stat_card("overview.balance", figures.get("balance", "—"), card_id="balance"),
            stat_card("overview.available", figures.get("available", "—"), card_id="available"),
            stat_card(
                "overview.month_spend", figures.get("month_spend", "—"), card_id="month-spend"
            ),
            stat_card(
                "overview.month_requests",
                figures.get("month_requests", "—"),
                card_id="month-requests",
            ),
            stat_card(
                "overview.month_tokens", figures.get("month_tokens", "—"), card_id="month-tokens"
            ),
            stat_card("overview.keys", figures.get("keys", "—"), card_id="active-keys"),
            gap="3",
            wrap="wrap",
            width="100%",
        ),
        rx.flex(
            series_block("usage.by_day", OverviewState.series, "spend_usd", color="var(--amber-9)"),
            series_block("usage.requests_by_day", OverviewState.series, "requests"),
            gap="3",
            wrap="wrap",
            width="100%",
        ),
        tenant=True,
    )


def usage_page() -> rx.Component:
    """Return the tenant's usage charts."""
    from console.components.charts import bar_block
    from console.i18n import t

    return crud_layout(
        "usage.title",
        rx.flex(
            series_block("usage.by_day", UsageState.series, "spend_usd", color="var(--amber-9)"),
            series_block("usage.requests_by_day", UsageState.series, "requests"),
            series_block("dash.tokens", UsageState.series, "tokens", color="var(--teal-9)"),
            gap="3",
            wrap="wrap",
            width="100%",
        ),
        rx.flex(
            bar_block("usage.by_model", UsageState.by_model, "spend_usd", color="var(--amber-9)"),
            bar_block("dash.requests", UsageState.by_model, "requests"),
            gap="3",
            wrap="wrap",
            width="100%",
        ),
        actions=[
            rx.select.root(
                rx.select.trigger(id="range"),
                rx.select.content(
                    rx.select.item(t("dash.range.7d"), value="7d"),
                    rx.select.item(t("dash.range.30d"), value="30d"),
                ),
                value=UsageState.range,
                on_change=UsageState.set_range,
            )
        ],
        tenant=True,
    )
