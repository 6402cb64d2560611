"""The signed-in tenant's own requests."""

from __future__ import annotations

from typing import ClassVar

import reflex as rx

from console.pages.logs import (
    OPERATOR_ONLY,
    LogDetailBase,
    LogsTableBase,
    log_detail_view,
    logs_view,
)

__all__ = ("MyLogDetail", "MyLogsTable", "my_log_detail_page", "my_logs_page")


class MyLogsTable(LogsTableBase, rx.State):
    """The tenant's requests, without the operator's columns."""

    _role = "tenant"
    _columns: ClassVar = tuple(c for c in LogsTableBase._columns if c.key not in OPERATOR_ONLY)
    _filters: ClassVar = tuple(f for f in LogsTableBase._filters if f.name not in OPERATOR_ONLY)


class MyLogDetail(LogDetailBase, rx.State):
    """One of the tenant's requests."""

    _role = "tenant"


def my_logs_page() -> rx.Component:
    """Return the tenant's logs page."""
    return logs_view(MyLogsTable, tenant=True)


def my_log_detail_page() -> rx.Component:
    """Return the tenant's request detail page."""
    return log_detail_view(MyLogDetail, tenant=True)
