"""Settings: options stored in the database; saving notifies the gateways."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import msgspec
import reflex as rx

from console import db
from console.auth import guarded
from console.i18n import t, tr
from console.toolkit import Field, FormState, crud_layout, field_input
from shared.services import options
from shared.services.inputs import SettingsInput

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from shared.services.users import Principal

__all__ = ("SettingsForm", "settings_page")

FIELDS = (
    Field("site_name", "settings.site_name"),
    Field("default_group", "settings.default_group", hint="form.name"),
    Field("signup_balance", "settings.signup_balance", hint="form.usd"),
    Field("log_retention_days", "settings.log_retention_days", kind="number"),
    Field("session_hours", "settings.session_hours", kind="number"),
)


class SettingsForm(FormState, rx.State):
    """The settings, edited in place."""

    _schema = SettingsInput
    _hints: ClassVar = {"default_group": "form.name", "signup_balance": "form.usd"}

    async def _save(
        self, session: AsyncSession, data: SettingsInput, _who: Principal, lang: str
    ) -> str:
        await options.write_settings(session, msgspec.structs.asdict(data))
        return tr(lang, "settings.saved")

    @rx.event
    @guarded("admin")
    async def load(self) -> Any:
        """Read the current settings into the form."""
        async with db.session() as session:
            current = await options.read_settings(session)
        self.values = {key: str(value) for key, value in current.items()}
        self.errors = {}
        self.editing += 1
        return None


def settings_page() -> rx.Component:
    """Return the settings page."""
    return crud_layout(
        "settings.title",
        rx.card(
            rx.form(
                rx.vstack(
                    *[field_input(SettingsForm, spec) for spec in FIELDS],
                    rx.button(
                        t("form.save"), type="submit", loading=SettingsForm.loading, id="submit"
                    ),
                    spacing="3",
                    max_width="32em",
                ),
                on_submit=SettingsForm.submit,
                reset_on_submit=False,
                key=SettingsForm.editing,
            ),
            max_width="36em",
        ),
    )
