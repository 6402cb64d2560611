"""Chart blocks shared by the admin dashboard and the tenant's usage page."""

from __future__ import annotations

from typing import Any

import reflex as rx

from console.i18n import t

__all__ = ("bar_block", "series_block")


def series_block(
    title: str, data: Any, key: str, *, color: str = "var(--accent-9)"
) -> rx.Component:
    """Return a titled area chart of ``data[*][key]`` over ``data[*].bucket``."""
    return rx.card(
        rx.text(t(title), size="2", weight="medium"),
        rx.recharts.area_chart(
            rx.recharts.area(data_key=key, stroke=color, fill=color, fill_opacity=0.2),
            rx.recharts.x_axis(data_key="bucket", tick={"fontSize": 10}),
            rx.recharts.y_axis(tick={"fontSize": 10}, width=50),
            rx.recharts.cartesian_grid(stroke_dasharray="3 3", opacity=0.4),
            rx.recharts.graphing_tooltip(),
            data=data,
            height=200,
            width="100%",
        ),
        width="100%",
        min_width="20em",
        flex="1",
    )


def bar_block(title: str, data: Any, key: str, *, color: str = "var(--accent-9)") -> rx.Component:
    """Return a titled horizontal bar chart of ``data[*][key]`` by ``data[*].name``."""
    return rx.card(
        rx.text(t(title), size="2", weight="medium"),
        rx.recharts.bar_chart(
            rx.recharts.bar(data_key=key, fill=color),
            rx.recharts.x_axis(type_="number", tick={"fontSize": 10}),
            rx.recharts.y_axis(data_key="name", type_="category", width=110, tick={"fontSize": 10}),
            rx.recharts.graphing_tooltip(),
            data=data,
            layout="vertical",
            height=220,
            width="100%",
        ),
        width="100%",
        min_width="20em",
        flex="1",
    )
