"""Column definitions and the one place values become display text."""

from __future__ import annotations

import dataclasses
import datetime
from decimal import Decimal
from typing import Any, Literal

from shared.money import format_usd

__all__ = ("Column", "Filter", "display", "display_row")

Kind = Literal["text", "usd", "time", "list", "bool", "number", "decimal", "status", "code"]


@dataclasses.dataclass(frozen=True)
class Column:
    """One column of a :func:`~console.toolkit.components.data_table`."""

    key: str
    """The row field shown."""
    label: str
    """Message key of the header."""
    kind: Kind = "text"
    """How the value is shown: ``usd`` for nano-dollars, ``time`` for timestamps, …"""
    sortable: bool = False
    """Whether clicking the header sorts by this column (the listing must know the key)."""


@dataclasses.dataclass(frozen=True)
class Filter:
    """One input of a table's filter bar; a select when ``options`` are given."""

    name: str
    label: str
    """Message key of the placeholder."""
    options: tuple[tuple[str, str], ...] = ()
    """(value, message key) pairs."""
    kind: Literal["text", "datetime-local"] = "text"


def display(value: Any, kind: Kind = "text") -> str:
    """Return ``value`` as the text a cell shows."""
    if value is None or value == "":
        return "—"
    if kind == "usd":
        return format_usd(int(value))
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, Decimal):
        text = format(value, "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    if isinstance(value, bool):
        return "✓" if value else "—"
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value) if value else "—"
    return str(value)


def display_row(row: dict[str, Any], columns: tuple[Column, ...]) -> dict[str, str]:
    """Return the row's ``id`` and column values as text, and nothing else.

    Only what a column shows reaches the browser, so a listing may select more than a
    given view may reveal.
    """
    shown = {"id": display(row.get("id"))}
    shown.update({column.key: display(row.get(column.key), column.kind) for column in columns})
    return shown
