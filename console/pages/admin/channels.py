"""Channels: list, create, edit, enable or disable, delete, and test against the upstream."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import reflex as rx

from console import db
from console.auth import guarded
from console.i18n import LangState, t, tr
from console.toolkit import (
    Column,
    Field,
    Filter,
    FormState,
    TableState,
    confirm_button,
    crud_layout,
    data_table,
    form_dialog,
)
from shared.errors import NotFoundError
from shared.models import Channel
from shared.services import admin, catalog, listings, probe
from shared.services.inputs import ChannelInput

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from shared.services.listings import ListQuery, Page
    from shared.services.users import Principal

__all__ = ("ChannelForm", "ChannelsTable", "channels_page")

KINDS = (
    ("openai", "OpenAI-compatible"),
    ("anthropic", "Anthropic"),
    ("gemini", "Gemini"),
    ("workers-ai", "Workers AI"),
)


def split(text: str) -> list[str]:
    """Return the non-empty items of a comma-separated list."""
    return [item.strip() for item in text.split(",") if item.strip()]


class ChannelsTable(TableState, rx.State):
    """The channel list and the results of channel tests."""

    test_results: dict[str, str] = {}  # noqa: RUF012 - Reflex copies state defaults per client
    test_ok: dict[str, bool] = {}  # noqa: RUF012 - Reflex copies state defaults per client
    testing: str = ""

    _columns: ClassVar = (
        Column("id", "col.id", sortable=True),
        Column("name", "col.name", sortable=True),
        Column("kind", "channels.kind", sortable=True),
        Column("base_url", "channels.base_url"),
        Column("models", "col.models", "list"),
        Column("priority", "channels.priority", "number", sortable=True),
        Column("weight", "channels.weight", "number"),
        Column("status", "col.status", "status", sortable=True),
    )
    _filters: ClassVar = (
        Filter("q", "search"),
        Filter("kind", "channels.kind", tuple((k, f"kind.{k}") for k, _ in KINDS)),
        Filter(
            "status", "col.status", (("enabled", "status.enabled"), ("disabled", "status.disabled"))
        ),
    )

    async def _fetch(self, session: AsyncSession, query: ListQuery, _who: Principal) -> Page:
        return await listings.list_channels(session, query)

    @rx.event
    @guarded("admin")
    async def set_status(self, channel_id: str, status: str) -> Any:
        """Enable or disable a channel."""
        lang = (await self.get_state(LangState)).lang
        async with db.session() as session:
            await catalog.set_channel_status(session, int(channel_id), status)
        await self._reload()
        return rx.toast.success(
            tr(lang, "channels.status_changed", status=tr(lang, f"status.{status}"))
        )

    @rx.event
    @guarded("admin")
    async def delete(self, channel_id: str) -> Any:
        """Delete a channel."""
        lang = (await self.get_state(LangState)).lang
        async with db.session() as session:
            await catalog.delete_channel(session, int(channel_id))
        await self._reload()
        return rx.toast.success(tr(lang, "channels.deleted"))

    @rx.event
    @guarded("admin")
    async def test(self, channel_id: str) -> Any:
        """Send one small real request to the channel's upstream; show latency and answer."""
        lang = (await self.get_state(LangState)).lang
        self.testing = channel_id
        yield
        async with db.session() as session:
            channel = await session.get(Channel, int(channel_id))
        if channel is None:
            self.testing = ""
            yield rx.toast.error(str(NotFoundError(f"channel {channel_id} does not exist")))
            return
        model = channel.models[0] if channel.models else "gpt-4o-mini"
        result = await probe.probe_channel(
            channel.kind,
            channel.base_url,
            channel.api_key,
            str(channel.model_map.get(model, model)),
        )
        key = "channels.test_ok" if result.ok else "channels.test_failed"
        text = tr(
            lang, key, ms=result.latency_ms, answer=result.answer.strip(), error=result.answer
        )
        self.test_results = {**self.test_results, channel_id: text}
        self.test_ok = {**self.test_ok, channel_id: result.ok}
        self.testing = ""
        yield rx.toast.success(text) if result.ok else rx.toast.error(text)


class ChannelForm(FormState, rx.State):
    """Create or edit a channel."""

    _schema = ChannelInput
    _defaults: ClassVar = {"kind": "openai", "priority": "0", "weight": "1"}
    _hints: ClassVar = {
        "name": "form.name",
        "base_url": "form.url",
        "models": "form.models",
        "groups": "form.models",
    }

    async def _save(
        self, session: AsyncSession, data: ChannelInput, _who: Principal, lang: str
    ) -> str:
        if self.editing:
            await catalog.update_channel(
                session,
                self.editing,
                name=data.name,
                kind=data.kind,
                base_url=data.base_url,
                models=split(data.models),
                priority=data.priority,
                weight=data.weight,
                groups=split(data.groups) or None,
                api_key=data.api_key or None,
            )
            return tr(lang, "channels.updated")
        await admin.add_channel(
            session,
            data.name,
            kind=data.kind,
            base_url=data.base_url,
            api_key=data.api_key,
            models=split(data.models),
            priority=data.priority,
            weight=data.weight,
            groups=split(data.groups) or None,
        )
        return tr(lang, "channels.created")

    def _after(self) -> Any:
        return ChannelsTable.refresh

    @rx.event
    @guarded("admin")
    async def start_edit(self, channel_id: str) -> None:
        """Open the form on an existing channel."""
        async with db.session() as session:
            detail = await catalog.channel_detail(session, int(channel_id))
        self.values = {k: str(v) for k, v in detail.items() if k != "has_api_key"}
        self.values["api_key"] = ""
        self.errors = {}
        self.editing = int(channel_id)
        self.open = True


FIELDS = (
    Field("name", "col.name", hint="form.name"),
    Field(
        "kind", "channels.kind", kind="select", options=tuple((k, f"kind.{k}") for k, _ in KINDS)
    ),
    Field("base_url", "channels.base_url", placeholder="https://api.example.com/v1"),
    Field("api_key", "channels.api_key", kind="password", hint="channels.api_key_keep"),
    Field("models", "col.models", hint="channels.models_hint"),
    Field("priority", "channels.priority", kind="number"),
    Field("weight", "channels.weight", kind="number"),
    Field("groups", "channels.groups"),
)


def _actions(row: rx.Var[dict[str, str]]) -> rx.Component:
    channel_id = row["id"].to(str)
    result = ChannelsTable.test_results.get(channel_id, "")
    return rx.vstack(
        rx.hstack(
            rx.button(
                t("channels.test"),
                on_click=ChannelsTable.test(channel_id),
                loading=ChannelsTable.testing == channel_id,
                size="1",
                variant="soft",
                id=f"test-{channel_id}",
            ),
            rx.button(
                rx.icon("pencil", size=12),
                on_click=ChannelForm.start_edit(channel_id),
                size="1",
                variant="soft",
                color_scheme="gray",
                id=f"edit-{channel_id}",
            ),
            rx.cond(
                row["status"] == "enabled",
                rx.button(
                    t("channels.disable"),
                    on_click=ChannelsTable.set_status(channel_id, "disabled"),
                    size="1",
                    variant="soft",
                    color_scheme="orange",
                    id=f"disable-{channel_id}",
                ),
                rx.button(
                    t("channels.enable"),
                    on_click=ChannelsTable.set_status(channel_id, "enabled"),
                    size="1",
                    variant="soft",
                    color_scheme="green",
                    id=f"enable-{channel_id}",
                ),
            ),
            confirm_button(
                "channels.delete",
                "channels.delete_confirm",
                ChannelsTable.delete(channel_id),
                button_id=f"delete-{channel_id}",
            ),
            spacing="1",
        ),
        rx.cond(
            result != "",
            rx.text(
                result,
                size="1",
                color_scheme=rx.cond(ChannelsTable.test_ok.get(channel_id, False), "green", "red"),
                id=f"test-result-{channel_id}",
                max_width="26em",
            ),
            rx.fragment(),
        ),
        spacing="1",
    )


def channels_page() -> rx.Component:
    """Return the channels page."""
    return crud_layout(
        "channels.title",
        data_table(
            ChannelsTable, ChannelsTable._columns, filters=ChannelsTable._filters, actions=_actions
        ),
        form_dialog(ChannelForm, "channels.new", FIELDS),
        actions=[
            rx.button(
                rx.icon("plus", size=14),
                t("channels.new"),
                on_click=ChannelForm.start_new,
                id="new",
            )
        ],
    )
