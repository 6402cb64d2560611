"""The console app: its pages, their guards and the HTTP routes beside them.

Every admin page loads ``SessionState.check_admin`` first and every tenant page
``SessionState.check_tenant``; those only steer the browser. The data handlers check
again on their own, so calling them directly gains nothing.
"""

from __future__ import annotations

from typing import Any

import reflex as rx

from console.auth import SessionState
from console.pages.admin.channels import ChannelsTable, channels_page
from console.pages.admin.codes import CodesTable, codes_page
from console.pages.admin.dashboard import DashboardState, dashboard_page
from console.pages.admin.groups import GroupsTable, groups_page
from console.pages.admin.keys import KeysTable, keys_page
from console.pages.admin.logs import LogDetail, LogsTable, log_detail_page, logs_page
from console.pages.admin.prices import PricesTable, prices_page
from console.pages.admin.settings import SettingsForm, settings_page
from console.pages.admin.tenants import LedgerTable, TenantsTable, ledger_page, tenants_page
from console.pages.admin.users import UsersTable, users_page
from console.pages.signin import SignInState, signin_page
from console.pages.tenant.keys import MyKeysTable, my_keys_page
from console.pages.tenant.logs import MyLogDetail, MyLogsTable, my_log_detail_page, my_logs_page
from console.pages.tenant.overview import OverviewState, UsageState, overview_page, usage_page
from console.pages.tenant.redeem import RedeemedTable, redeem_page
from console.routes import create_routes

__all__ = ("app", "create_app")

ADMIN_PAGES: tuple[tuple[Any, str, Any, str], ...] = (
    (dashboard_page, "/", DashboardState.load, "Dashboard"),
    (channels_page, "/channels", ChannelsTable.load, "Channels"),
    (prices_page, "/prices", PricesTable.load, "Models & prices"),
    (groups_page, "/groups", GroupsTable.load, "Groups"),
    (tenants_page, "/tenants", TenantsTable.load, "Tenants"),
    (ledger_page, "/ledger", LedgerTable.load, "Ledger"),
    (keys_page, "/keys", KeysTable.load, "API keys"),
    (codes_page, "/codes", CodesTable.load, "Redemption codes"),
    (logs_page, "/logs", LogsTable.load, "Request logs"),
    (log_detail_page, "/logs/detail", LogDetail.load_detail, "Request"),
    (users_page, "/users", UsersTable.load, "Console users"),
    (settings_page, "/settings", SettingsForm.load, "Settings"),
)
TENANT_PAGES: tuple[tuple[Any, str, Any, str], ...] = (
    (overview_page, "/tenant", OverviewState.load, "Overview"),
    (my_keys_page, "/tenant/keys", MyKeysTable.load, "API keys"),
    (usage_page, "/tenant/usage", UsageState.load, "Usage"),
    (my_logs_page, "/tenant/logs", MyLogsTable.load, "Request logs"),
    (my_log_detail_page, "/tenant/logs/detail", MyLogDetail.load_detail, "Request"),
    (redeem_page, "/tenant/redeem", RedeemedTable.load, "Redeem a code"),
)


def create_app() -> rx.App:
    """Build the Reflex app with every page."""
    app = rx.App(api_transformer=create_routes())
    app.add_page(signin_page, route="/signin", on_load=SignInState.load, title="Tollgate")
    for page, route, load, title in ADMIN_PAGES:
        app.add_page(
            page, route=route, on_load=[SessionState.check_admin, load], title=f"{title} · Tollgate"
        )
    for page, route, load, title in TENANT_PAGES:
        app.add_page(
            page,
            route=route,
            on_load=[SessionState.check_tenant, load],
            title=f"{title} · Tollgate",
        )
    return app


app = create_app()
