"""The signed-in tenant's own API keys."""

from __future__ import annotations

from typing import Any, ClassVar

import reflex as rx

from console.pages.keys import KeyFormBase, KeyModelsFormBase, KeysTableBase, keys_view

__all__ = ("MyKeyForm", "MyKeyModelsForm", "MyKeysTable", "my_keys_page")


class MyKeysTable(KeysTableBase, rx.State):
    """The tenant's keys."""

    _role = "tenant"
    _columns: ClassVar = tuple(c for c in KeysTableBase._columns if c.key != "tenant")


class MyKeyForm(KeyFormBase, rx.State):
    """Create a key for the signed-in tenant."""

    _role = "tenant"

    def _after(self) -> Any:
        return MyKeysTable.refresh


class MyKeyModelsForm(KeyModelsFormBase, rx.State):
    """Edit one of the tenant's keys' allow-list."""

    _role = "tenant"

    def _after(self) -> Any:
        return MyKeysTable.refresh


def my_keys_page() -> rx.Component:
    """Return the tenant's keys page."""
    return keys_view(MyKeysTable, MyKeyForm, MyKeyModelsForm, tenant=True)
