"""The toolkit's components: data table, filter bar, pagination, form dialog, confirm button.

They take a :class:`~console.toolkit.table.TableState` or
:class:`~console.toolkit.form.FormState` subclass and plain column, filter and field
definitions, so a page is mostly a list of those definitions.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Literal

import reflex as rx

from console.i18n import t
from console.toolkit.table import PAGE_SIZES

if TYPE_CHECKING:
    from collections.abc import Callable

    from console.toolkit.columns import Column, Filter

__all__ = (
    "Field",
    "confirm_button",
    "data_table",
    "field_input",
    "form_dialog",
    "stat_card",
    "status_badge",
)

_STATUS_COLORS = {
    "enabled": "green",
    "active": "green",
    "ok": "green",
    "redeemed": "blue",
    "disabled": "gray",
    "revoked": "gray",
    "void": "gray",
    "suspended": "orange",
    "truncated": "orange",
    "error": "red",
}


@dataclasses.dataclass(frozen=True)
class Field:
    """One input of a :func:`form_dialog`."""

    name: str
    label: str
    """Message key of the label."""
    kind: Literal["text", "password", "number", "select", "textarea", "datetime-local"] = "text"
    options: tuple[tuple[str, str], ...] = ()
    """(value, message key) pairs of a select."""
    choices: Any = None
    """A list var of plain values for a select whose options come from the state."""
    hint: str | None = None
    """Message key of the help text under the input."""
    placeholder: str = ""


def status_badge(value: rx.Var[str]) -> rx.Component:
    """Return a coloured badge for a status value."""
    return rx.match(
        value,
        *[
            (status, rx.badge(t(f"status.{status}"), color_scheme=color, variant="soft"))
            for status, color in _STATUS_COLORS.items()
        ],
        rx.badge(value, variant="soft"),
    )


def _cell(column: Column, row: rx.Var[dict[str, str]]) -> rx.Component:
    value = row[column.key]
    if column.kind == "status":
        return rx.table.cell(status_badge(value.to(str)))
    if column.kind == "code":
        return rx.table.cell(rx.code(value, variant="ghost"))
    if column.kind in ("usd", "number", "decimal"):
        return rx.table.cell(value, text_align="right", white_space="nowrap")
    return rx.table.cell(value, max_width="28em", overflow="hidden", text_overflow="ellipsis")


def _header(state: Any, column: Column) -> rx.Component:
    if not column.sortable:
        return rx.table.column_header_cell(t(column.label))
    arrow = rx.cond(
        state.sort == column.key,
        rx.cond(state.desc, rx.icon("arrow-down", size=14), rx.icon("arrow-up", size=14)),
        rx.icon("arrow-up-down", size=14, opacity=0.4),
    )
    return rx.table.column_header_cell(
        rx.hstack(t(column.label), arrow, spacing="1", align="center"),
        on_click=state.sort_by(column.key),
        cursor="pointer",
        id=f"sort-{column.key}",
    )


def _filter_input(state: Any, spec: Filter) -> rx.Component:
    current = state.filters.get(spec.name, "")
    if spec.options:
        return rx.select.root(
            rx.select.trigger(placeholder=t(spec.label), min_width="10em"),
            rx.select.content(
                rx.select.item(t("all"), value="__all__"),
                *[rx.select.item(t(label), value=value) for value, label in spec.options],
            ),
            name=spec.name,
            default_value=rx.cond(current == "", "__all__", current),
        )
    return rx.input(
        name=spec.name,
        placeholder=t(spec.label),
        default_value=current,
        type=spec.kind,
        id=f"filter-{spec.name}",
        min_width="10em",
    )


def _filter_bar(state: Any, filters: tuple[Filter, ...]) -> rx.Component:
    return rx.form(
        rx.hstack(
            *[_filter_input(state, spec) for spec in filters],
            rx.button(rx.icon("filter", size=14), t("table.filter"), type="submit", id="filter"),
            rx.button(
                t("table.clear"),
                variant="soft",
                color_scheme="gray",
                type="button",
                on_click=state.clear_filters,
            ),
            spacing="2",
            wrap="wrap",
            align="center",
        ),
        on_submit=state.apply_filters,
        key=state.filter_version,
        reset_on_submit=False,
    )


def _pagination(state: Any) -> rx.Component:
    position = rx.cond(
        state.pages > 0,
        rx.text(
            t("table.page"),
            " ",
            state.page,
            " / ",
            state.pages,
            " · ",
            state.total,
            " ",
            t("table.rows"),
            size="2",
            color_scheme="gray",
        ),
        rx.text(t("table.page"), " ", state.page, size="2", color_scheme="gray"),
    )
    return rx.hstack(
        position,
        rx.spacer(),
        rx.select.root(
            rx.select.trigger(variant="soft"),
            rx.select.content(
                *[rx.select.item(f"{size}", value=str(size)) for size in PAGE_SIZES],
            ),
            value=state.page_size.to_string(),
            on_change=state.set_size,
            size="1",
        ),
        rx.text(t("table.per_page"), size="2", color_scheme="gray"),
        rx.button(
            rx.icon("chevron-left", size=14),
            t("table.previous"),
            on_click=state.previous_page,
            disabled=state.page <= 1,
            variant="soft",
            size="1",
            id="page-previous",
        ),
        rx.button(
            t("table.next"),
            rx.icon("chevron-right", size=14),
            on_click=state.next_page,
            disabled=~state.has_next,
            variant="soft",
            size="1",
            id="page-next",
        ),
        spacing="2",
        align="center",
        width="100%",
    )


def data_table(
    state: Any,
    columns: tuple[Column, ...],
    *,
    filters: tuple[Filter, ...] = (),
    actions: Callable[[rx.Var[dict[str, str]]], rx.Component] | None = None,
    table_id: str = "data-table",
) -> rx.Component:
    """Return a paged table of ``state.rows`` with sortable headers and a filter bar."""
    headers = [_header(state, column) for column in columns]
    if actions is not None:
        headers.append(rx.table.column_header_cell(t("table.actions")))

    def row(item: rx.Var[dict[str, str]]) -> rx.Component:
        cells = [_cell(column, item) for column in columns]
        if actions is not None:
            cells.append(rx.table.cell(actions(item)))
        return rx.table.row(*cells, data_row_id=item["id"])

    body = rx.table.root(
        rx.table.header(rx.table.row(*headers)),
        rx.table.body(rx.foreach(state.rows, row)),
        variant="surface",
        size="1",
        width="100%",
        id=table_id,
    )
    return rx.vstack(
        rx.hstack(
            _filter_bar(state, filters) if filters else rx.fragment(),
            rx.spacer(),
            rx.icon_button(
                rx.icon("refresh-cw", size=14),
                on_click=state.refresh,
                variant="soft",
                loading=state.loading,
                title="refresh",
                id="refresh",
            ),
            width="100%",
            align="center",
        ),
        rx.cond(
            state.error != "",
            rx.callout(
                rx.hstack(
                    rx.text(t("table.error"), " ", state.error),
                    rx.button(t("table.retry"), on_click=state.refresh, size="1"),
                    align="center",
                ),
                icon="triangle-alert",
                color_scheme="red",
                width="100%",
                id="table-error",
            ),
            rx.cond(
                state.rows.length() > 0,
                rx.box(body, overflow_x="auto", width="100%"),
                rx.center(
                    rx.vstack(
                        rx.icon("inbox", size=32, opacity=0.4),
                        rx.text(t("table.empty"), color_scheme="gray"),
                        align="center",
                    ),
                    padding="3em",
                    width="100%",
                    border="1px dashed var(--gray-a6)",
                    border_radius="8px",
                    id="table-empty",
                ),
            ),
        ),
        _pagination(state),
        spacing="3",
        width="100%",
    )


def field_input(state: Any, spec: Field) -> rx.Component:
    """Return one labelled form input with its error and hint."""
    current = state.values.get(spec.name, "")
    if spec.kind == "select":
        items = [rx.select.item(t(label), value=value) for value, label in spec.options]
        if spec.choices is not None:
            items.append(rx.foreach(spec.choices, lambda c: rx.select.item(c, value=c)))
        control: rx.Component = rx.select.root(
            rx.select.trigger(width="100%", id=f"field-{spec.name}"),
            rx.select.content(*items),
            name=spec.name,
            default_value=current,
        )
    elif spec.kind == "textarea":
        control = rx.text_area(
            name=spec.name, default_value=current, id=f"field-{spec.name}", width="100%"
        )
    else:
        control = rx.input(
            name=spec.name,
            default_value=current,
            type=spec.kind,
            placeholder=spec.placeholder,
            id=f"field-{spec.name}",
            width="100%",
        )
    return rx.vstack(
        rx.text(
            t(spec.label), as_="label", size="2", weight="medium", html_for=f"field-{spec.name}"
        ),
        control,
        rx.cond(
            state.errors.contains(spec.name),
            rx.text(
                state.errors.get(spec.name, ""),
                color_scheme="red",
                size="1",
                class_name="field-error",
                id=f"error-{spec.name}",
            ),
            rx.text(t(spec.hint), size="1", color_scheme="gray") if spec.hint else rx.fragment(),
        ),
        spacing="1",
        width="100%",
    )


def form_dialog(
    state: Any,
    title: str,
    fields: tuple[Field, ...],
    *,
    submit_label: str = "form.save",
    dialog_id: str = "form-dialog",
) -> rx.Component:
    """Return a modal form bound to a :class:`FormState`; open it with ``start_new``."""
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title(t(title)),
            rx.form(
                rx.vstack(
                    *[field_input(state, spec) for spec in fields],
                    rx.hstack(
                        rx.dialog.close(
                            rx.button(
                                t("form.cancel"), variant="soft", color_scheme="gray", type="button"
                            )
                        ),
                        rx.button(
                            t(submit_label), type="submit", loading=state.loading, id="submit"
                        ),
                        justify="end",
                        width="100%",
                    ),
                    spacing="3",
                ),
                on_submit=state.submit,
                reset_on_submit=False,
            ),
            id=dialog_id,
            max_width="34em",
        ),
        open=state.open,
        on_open_change=state.set_open,
    )


def confirm_button(
    label: str,
    message: str,
    on_confirm: Any,
    *,
    color: str = "red",
    button_id: str | rx.Var[str] | None = None,
    size: str = "1",
) -> rx.Component:
    """Return a button that asks before running a destructive ``on_confirm``."""
    return rx.alert_dialog.root(
        rx.alert_dialog.trigger(
            rx.button(t(label), color_scheme=color, variant="soft", size=size, id=button_id)
        ),
        rx.alert_dialog.content(
            rx.alert_dialog.title(t("confirm.title")),
            rx.alert_dialog.description(t(message)),
            rx.hstack(
                rx.alert_dialog.cancel(
                    rx.button(t("form.cancel"), variant="soft", color_scheme="gray")
                ),
                rx.alert_dialog.action(
                    rx.button(
                        t("confirm.yes"), color_scheme=color, on_click=on_confirm, id="confirm"
                    )
                ),
                justify="end",
                spacing="3",
                margin_top="1em",
            ),
        ),
    )


def stat_card(label: str, value: Any, *, card_id: str | None = None) -> rx.Component:
    """Return a card with a big figure and its label."""
    return rx.card(
        rx.vstack(
            rx.text(t(label), size="2", color_scheme="gray"),
            rx.heading(value, size="6", id=card_id),
            spacing="1",
        ),
        min_width="12em",
        flex="1",
    )
