"""Every tenant's API keys."""

from __future__ import annotations

from typing import Any, ClassVar

import reflex as rx

from console.pages.keys import KeyFormBase, KeyModelsFormBase, KeysTableBase, keys_view
from console.toolkit import Filter

__all__ = ("KeyForm", "KeyModelsForm", "KeysTable", "keys_page")


class KeysTable(KeysTableBase, rx.State):
    """All keys."""

    _role = "admin"
    _filters: ClassVar = (Filter("tenant", "col.tenant"), *KeysTableBase._filters)


class KeyForm(KeyFormBase, rx.State):
    """Create a key for any tenant."""

    _role = "admin"

    def _after(self) -> Any:
        return KeysTable.refresh


class KeyModelsForm(KeyModelsFormBase, rx.State):
    """Edit any key's allow-list."""

    _role = "admin"

    def _after(self) -> Any:
        return KeysTable.refresh


def keys_page() -> rx.Component:
    """Return the admin keys page."""
    return keys_view(KeysTable, KeyForm, KeyModelsForm, tenant=False)
