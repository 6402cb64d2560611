"""The operator's dashboard: traffic, tokens, spend, errors and latency, with breakdowns."""

from __future__ import annotations

from typing import Any

import reflex as rx

from console import db
from console.auth import Guarded, guarded
from console.components.charts import bar_block, series_block
from console.i18n import t
from console.toolkit import crud_layout, stat_card
from shared.money import format_usd
from shared.services import reports

__all__ = ("DashboardState", "dashboard_page")


class DashboardState(Guarded, rx.State):
    """Figures of the chosen range."""

    range: str = "24h"
    totals: dict[str, str] = {}  # noqa: RUF012 - Reflex copies state defaults per client
    series: list[dict[str, Any]] = []  # noqa: RUF012 - Reflex copies state defaults per client
    by_model: list[dict[str, Any]] = []  # noqa: RUF012 - Reflex copies state defaults per client
    by_channel: list[dict[str, Any]] = []  # noqa: RUF012 - Reflex copies state defaults per client
    by_tenant: list[dict[str, Any]] = []  # noqa: RUF012 - Reflex copies state defaults per client

    @rx.event
    @guarded("admin")
    async def load(self) -> None:
        """Aggregate the usage log over the range in the URL (``?range=7d``)."""
        wanted = self.router.url.query_parameters.get("range", "24h")
        self.range = wanted if wanted in reports.RANGES else "24h"
        async with db.session() as session:
            board = await reports.dashboard(session, self.range)
        requests = board.requests
        self.totals = {
            "requests": f"{requests:,}",
            "tokens": f"{board.input_tokens + board.output_tokens:,}",
            "spend": format_usd(board.spend),
            "error_rate": f"{100 * board.errors / requests:.2f}" if requests else "0",
            "p50": f"{board.p50_ms:,}",
            "p95": f"{board.p95_ms:,}",
        }
        self.series = board.series
        self.by_model = board.by_model
        self.by_channel = board.by_channel
        self.by_tenant = board.by_tenant

    @rx.event
    def set_range(self, value: str) -> Any:
        """Show another range (kept in the URL)."""
        return rx.redirect(f"/?range={value}" if value != "24h" else "/", replace=True)


def dashboard_page() -> rx.Component:
    """Return the dashboard."""
    range_select = rx.select.root(
        rx.select.trigger(id="range"),
        rx.select.content(
            *[rx.select.item(t(f"dash.range.{r}"), value=r) for r in reports.RANGES],
        ),
        value=DashboardState.range,
        on_change=DashboardState.set_range,
    )
    totals = DashboardState.totals
    return crud_layout(
        "dash.title",
        rx.flex(
            stat_card("dash.requests", totals.get("requests", "0"), card_id="stat-requests"),
            stat_card("dash.tokens", totals.get("tokens", "0"), card_id="stat-tokens"),
            stat_card("dash.spend", totals.get("spend", "0"), card_id="stat-spend"),
            stat_card("dash.error_rate", totals.get("error_rate", "0"), card_id="stat-errors"),
            stat_card("dash.p50", totals.get("p50", "0"), card_id="stat-p50"),
            stat_card("dash.p95", totals.get("p95", "0"), card_id="stat-p95"),
            gap="3",
            wrap="wrap",
            width="100%",
        ),
        rx.text(t("dash.over_time"), size="2", color_scheme="gray"),
        rx.flex(
            series_block("dash.requests", DashboardState.series, "requests"),
            series_block("dash.tokens", DashboardState.series, "tokens", color="var(--teal-9)"),
            series_block("dash.spend", DashboardState.series, "spend_usd", color="var(--amber-9)"),
            series_block(
                "dash.error_rate", DashboardState.series, "error_rate", color="var(--red-9)"
            ),
            gap="3",
            wrap="wrap",
            width="100%",
        ),
        rx.flex(
            bar_block("dash.by_model", DashboardState.by_model, "requests"),
            bar_block(
                "dash.by_channel", DashboardState.by_channel, "requests", color="var(--teal-9)"
            ),
            bar_block(
                "dash.by_tenant", DashboardState.by_tenant, "spend_usd", color="var(--amber-9)"
            ),
            gap="3",
            wrap="wrap",
            width="100%",
        ),
        rx.card(
            rx.text(t("dash.latency"), size="2", weight="medium"),
            rx.recharts.bar_chart(
                rx.recharts.bar(data_key="p50_ms", fill="var(--accent-9)", name="p50"),
                rx.recharts.bar(data_key="p95_ms", fill="var(--accent-6)", name="p95"),
                rx.recharts.x_axis(data_key="name", tick={"fontSize": 10}),
                rx.recharts.y_axis(tick={"fontSize": 10}, width=50),
                rx.recharts.legend(),
                rx.recharts.graphing_tooltip(),
                data=DashboardState.by_model,
                height=220,
                width="100%",
            ),
            width="100%",
        ),
        rx.cond(
            DashboardState.by_model.length() > 0,
            rx.table.root(
                rx.table.header(
                    rx.table.row(
                        rx.table.column_header_cell(t("col.model")),
                        rx.table.column_header_cell(t("dash.requests")),
                        rx.table.column_header_cell(t("dash.tokens")),
                        rx.table.column_header_cell(t("dash.spend")),
                        rx.table.column_header_cell(t("dash.p50")),
                        rx.table.column_header_cell(t("dash.p95")),
                    )
                ),
                rx.table.body(
                    rx.foreach(
                        DashboardState.by_model,
                        lambda r: rx.table.row(
                            rx.table.cell(r["name"]),
                            rx.table.cell(r["requests"]),
                            rx.table.cell(r["tokens"]),
                            rx.table.cell(r["spend_usd"]),
                            rx.table.cell(r["p50_ms"]),
                            rx.table.cell(r["p95_ms"]),
                        ),
                    )
                ),
                size="1",
                variant="surface",
                width="100%",
                id="by-model",
            ),
            rx.fragment(),
        ),
        actions=[range_select],
    )
