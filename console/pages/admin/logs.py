"""Every tenant's requests."""

from __future__ import annotations

import reflex as rx

from console.pages.logs import LogDetailBase, LogsTableBase, log_detail_view, logs_view

__all__ = ("LogDetail", "LogsTable", "log_detail_page", "logs_page")


class LogsTable(LogsTableBase, rx.State):
    """All requests."""

    _role = "admin"


class LogDetail(LogDetailBase, rx.State):
    """Any request."""

    _role = "admin"


def logs_page() -> rx.Component:
    """Return the admin logs page."""
    return logs_view(LogsTable, tenant=False)


def log_detail_page() -> rx.Component:
    """Return the admin request detail page."""
    return log_detail_view(LogDetail, tenant=False)
