"""The admin toolkit: table and form state, data table, CRUD layout and confirm dialogs.

A CRUD page is a ``TableState`` subclass (columns, filters, ``_fetch``), a ``FormState``
subclass (an input struct and ``_save``) and a page function of a few components.
"""

from __future__ import annotations

from console.toolkit.columns import Column, Filter, display, display_row
from console.toolkit.components import (
    Field,
    confirm_button,
    data_table,
    field_input,
    form_dialog,
    stat_card,
    status_badge,
)
from console.toolkit.form import FormState, translate_error
from console.toolkit.layout import crud_layout
from console.toolkit.table import PAGE_SIZES, TableState

__all__ = (
    "PAGE_SIZES",
    "Column",
    "Field",
    "Filter",
    "FormState",
    "TableState",
    "confirm_button",
    "crud_layout",
    "data_table",
    "display",
    "display_row",
    "field_input",
    "form_dialog",
    "stat_card",
    "status_badge",
    "translate_error",
)
