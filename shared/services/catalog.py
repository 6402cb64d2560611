"""Console changes to channels, prices, groups, tenants and keys beyond the admin CLI's.

Creating things goes through :mod:`shared.services.admin`, shared with the CLI; this
module edits, enables, disables and deletes them. Key operations take the signed-in
tenant's id and refuse keys of any other tenant. Every change lands in a table whose
trigger notifies ``tollgate_config``, so running gateways pick it up within a second.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from shared.errors import ConflictError, InvalidInputError, NotFoundError
from shared.models import ApiKey, Channel, Group, ModelPrice, Tenant
from shared.services.admin import CHANNEL_KINDS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.ext.asyncio import AsyncSession

__all__ = (
    "available_models",
    "channel_detail",
    "delete_channel",
    "delete_group",
    "delete_price",
    "group_names",
    "revoke_key",
    "set_channel_status",
    "set_key_models",
    "set_tenant_group",
    "set_tenant_status",
    "tenant_names",
    "update_channel",
    "update_group",
)


async def _commit(session: AsyncSession, what: str) -> None:
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        msg = f"{what} already exists"
        raise ConflictError(msg) from exc


async def _channel(session: AsyncSession, channel_id: int) -> Channel:
    channel = await session.get(Channel, channel_id)
    if channel is None:
        msg = f"channel {channel_id} does not exist"
        raise NotFoundError(msg)
    return channel


async def channel_detail(session: AsyncSession, channel_id: int) -> dict[str, Any]:
    """Return a channel's editable fields (the upstream key is never returned)."""
    channel = await _channel(session, channel_id)
    return {
        "id": channel.id,
        "name": channel.name,
        "kind": channel.kind,
        "base_url": channel.base_url,
        "models": ", ".join(channel.models),
        "priority": channel.priority,
        "weight": channel.weight,
        "groups": ", ".join(channel.groups or []),
        "status": channel.status,
        "has_api_key": bool(channel.api_key),
    }


async def update_channel(
    session: AsyncSession,
    channel_id: int,
    *,
    name: str,
    kind: str,
    base_url: str,
    models: Sequence[str],
    priority: int,
    weight: int,
    groups: Sequence[str] | None,
    api_key: str | None = None,
) -> Channel:
    """Change a channel; an ``api_key`` of None keeps the stored one.

    Raises:
        InvalidInputError: for an unknown kind, a base URL that is not http(s), or no models.
        NotFoundError: when there is no such channel.
    """
    if kind not in CHANNEL_KINDS:
        msg = f"channel kind `{kind}` is not one of {', '.join(CHANNEL_KINDS)}"
        raise InvalidInputError(msg)
    if not base_url.startswith(("http://", "https://")):
        msg = f"base URL `{base_url}` must start with http:// or https://"
        raise InvalidInputError(msg)
    if not models:
        msg = "a channel needs at least one model"
        raise InvalidInputError(msg)
    channel = await _channel(session, channel_id)
    channel.name = name
    channel.kind = kind
    channel.base_url = base_url.rstrip("/")
    channel.models = list(models)
    channel.priority = priority
    channel.weight = weight
    channel.groups = list(groups) if groups else None
    if api_key is not None:
        channel.api_key = api_key
    await _commit(session, f"channel `{name}`")
    return channel


async def set_channel_status(session: AsyncSession, channel_id: int, status: str) -> Channel:
    """Enable or disable a channel; disabled channels receive no traffic."""
    if status not in ("enabled", "disabled"):
        msg = f"status `{status}` is not one of enabled, disabled"
        raise InvalidInputError(msg)
    channel = await _channel(session, channel_id)
    channel.status = status
    await session.commit()
    return channel


async def delete_channel(session: AsyncSession, channel_id: int) -> None:
    """Delete a channel; its past requests keep their channel id in the usage log."""
    channel = await _channel(session, channel_id)
    await session.delete(channel)
    await session.commit()


async def delete_price(session: AsyncSession, model: str) -> None:
    """Delete a model's price; gateways stop serving the model at once."""
    result = await session.execute(delete(ModelPrice).where(ModelPrice.model == model))
    if not getattr(result, "rowcount", 0):
        msg = f"no price for model `{model}`"
        raise NotFoundError(msg)
    await session.commit()


async def update_group(
    session: AsyncSession, group_id: int, *, name: str, ratio: str | Decimal
) -> Group:
    """Rename a group or change its ratio."""
    group = await session.get(Group, group_id)
    if group is None:
        msg = f"group {group_id} does not exist"
        raise NotFoundError(msg)
    try:
        value = Decimal(str(ratio))
    except ArithmeticError:
        value = Decimal(-1)
    if not value.is_finite() or value < 0:
        msg = f"ratio `{ratio}` must be a number of zero or more"
        raise InvalidInputError(msg)
    group.name = name
    group.ratio = value
    await _commit(session, f"group `{name}`")
    return group


async def delete_group(session: AsyncSession, group_id: int) -> None:
    """Delete a group that no tenant belongs to.

    Raises:
        ConflictError: when tenants still belong to it.
    """
    used = await session.scalar(
        select(func.count()).select_from(Tenant).where(Tenant.group_id == group_id)
    )
    if used:
        msg = f"{used} tenant(s) still belong to this group; move them first"
        raise ConflictError(msg)
    group = await session.get(Group, group_id)
    if group is None:
        msg = f"group {group_id} does not exist"
        raise NotFoundError(msg)
    await session.delete(group)
    await session.commit()


async def set_tenant_status(session: AsyncSession, tenant_id: int, status: str) -> Tenant:
    """Activate or suspend a tenant; a suspended tenant's requests are refused."""
    if status not in ("active", "suspended"):
        msg = f"status `{status}` is not one of active, suspended"
        raise InvalidInputError(msg)
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        msg = f"tenant {tenant_id} does not exist"
        raise NotFoundError(msg)
    tenant.status = status
    await session.commit()
    return tenant


async def set_tenant_group(session: AsyncSession, tenant_id: int, group: str) -> Tenant:
    """Move a tenant to another pricing group."""
    group_id = await session.scalar(select(Group.id).where(Group.name == group))
    if group_id is None:
        msg = f"group `{group}` does not exist"
        raise NotFoundError(msg)
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        msg = f"tenant {tenant_id} does not exist"
        raise NotFoundError(msg)
    tenant.group_id = group_id
    await session.commit()
    return tenant


async def _key(session: AsyncSession, key_id: int, tenant_id: int | None) -> ApiKey:
    key = await session.get(ApiKey, key_id)
    if key is None or (tenant_id is not None and key.tenant_id != tenant_id):
        msg = f"key {key_id} does not exist"
        raise NotFoundError(msg)
    return key


async def revoke_key(session: AsyncSession, key_id: int, *, tenant_id: int | None) -> ApiKey:
    """Revoke a key; with ``tenant_id``, only one of that tenant's keys."""
    key = await _key(session, key_id, tenant_id)
    key.status = "revoked"
    await session.commit()
    return key


async def set_key_models(
    session: AsyncSession, key_id: int, models: Sequence[str] | None, *, tenant_id: int | None
) -> ApiKey:
    """Replace a key's model allow-list (None allows every model)."""
    key = await _key(session, key_id, tenant_id)
    key.models = list(models) if models else None
    await session.commit()
    return key


async def tenant_names(session: AsyncSession) -> list[str]:
    """Return every tenant's name, sorted."""
    return list(await session.scalars(select(Tenant.name).order_by(Tenant.name)))


async def group_names(session: AsyncSession) -> list[str]:
    """Return every group's name, sorted."""
    return list(await session.scalars(select(Group.name).order_by(Group.name)))


async def available_models(session: AsyncSession, tenant_id: int | None = None) -> list[str]:
    """Return models that have a price and an enabled channel (for the tenant's group)."""
    group = None
    if tenant_id is not None:
        group = await session.scalar(
            select(Group.name)
            .join(Tenant, Tenant.group_id == Group.id)
            .where(Tenant.id == tenant_id)
        )
    channels = await session.execute(
        select(Channel.models, Channel.groups).where(Channel.status == "enabled")
    )
    served: set[str] = set()
    for models, groups in channels:
        if group is None or groups is None or group in groups:
            served.update(models)
    priced = set(await session.scalars(select(ModelPrice.model)))
    return sorted(served & priced)
