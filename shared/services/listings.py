"""Paged, sorted and filtered lists of what the console shows, scoped to a tenant on demand.

Every list takes a :class:`ListQuery`. Its ``tenant_id``, when set, narrows the list to that
tenant's rows whatever the filters say; the console sets it from the signed-in user, never
from anything the browser sends. Sort keys and filters are checked against a fixed list
per listing, so nothing the browser sends reaches SQL as text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import msgspec
from sqlalchemy import Select, func, or_, select

from shared.models import (
    ApiKey,
    Channel,
    ConsoleUser,
    Group,
    LedgerEntry,
    ModelPrice,
    RedeemCode,
    Tenant,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sqlalchemy.ext.asyncio import AsyncSession

__all__ = (
    "ListQuery",
    "Page",
    "list_channels",
    "list_codes",
    "list_groups",
    "list_keys",
    "list_ledger",
    "list_prices",
    "list_tenants",
    "list_users",
    "paginate",
)

MAX_PAGE_SIZE: Final = 200


class ListQuery(msgspec.Struct, kw_only=True):
    """Which page of a list to return, in which order, narrowed how."""

    page: int = 1
    page_size: int = 20
    sort: str = ""
    """A sort key the listing knows; its default order when empty or unknown."""
    desc: bool = False
    filters: dict[str, str] = msgspec.field(default_factory=dict)
    tenant_id: int | None = None
    """When set, only this tenant's rows are listed."""

    def filter(self, name: str) -> str:
        """Return the stripped value of filter ``name``, or an empty string."""
        return (self.filters.get(name) or "").strip()


class Page(msgspec.Struct, kw_only=True):
    """One page of rows, as plain dictionaries of column values."""

    rows: list[dict[str, Any]]
    total: int | None
    """Rows over all pages; None where counting would be too slow."""
    has_next: bool


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def paginate(
    session: AsyncSession,
    stmt: Select[*tuple[Any, ...]],
    query: ListQuery,
    sortable: Mapping[str, Any],
    default: str,
    *,
    count: bool = True,
) -> Page:
    """Run ``stmt`` for one page of ``query``, sorted by a known key, then by id."""
    size = max(1, min(query.page_size, MAX_PAGE_SIZE))
    page = max(1, query.page)
    key = query.sort if query.sort in sortable else default
    column = sortable[key]
    order = column.desc() if query.desc else column.asc()
    tiebreak = sortable["id"].desc() if query.desc else sortable["id"].asc()
    total = None
    if count:
        total = int(
            await session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
            or 0
        )
    result = await session.execute(
        stmt.order_by(order, tiebreak).limit(size + 1).offset((page - 1) * size)
    )
    rows = [dict(row._mapping) for row in result]
    return Page(rows=rows[:size], total=total, has_next=len(rows) > size)


async def list_channels(session: AsyncSession, query: ListQuery) -> Page:
    """List upstream channels; filters ``q`` (name or URL), ``kind`` and ``status``."""
    stmt = select(
        Channel.id,
        Channel.name,
        Channel.kind,
        Channel.base_url,
        Channel.models,
        Channel.priority,
        Channel.weight,
        Channel.status,
        Channel.groups,
        Channel.updated_at,
    )
    if q := query.filter("q"):
        stmt = stmt.where(or_(Channel.name.ilike(_like(q)), Channel.base_url.ilike(_like(q))))
    if kind := query.filter("kind"):
        stmt = stmt.where(Channel.kind == kind)
    if status := query.filter("status"):
        stmt = stmt.where(Channel.status == status)
    sortable = {
        "id": Channel.id,
        "name": Channel.name,
        "kind": Channel.kind,
        "priority": Channel.priority,
        "status": Channel.status,
    }
    return await paginate(session, stmt, query, sortable, "id")


async def list_prices(session: AsyncSession, query: ListQuery) -> Page:
    """List model prices; filter ``q`` (model name)."""
    stmt = select(
        ModelPrice.id,
        ModelPrice.model,
        ModelPrice.input,
        ModelPrice.cached_input,
        ModelPrice.output,
        ModelPrice.updated_at,
    )
    if q := query.filter("q"):
        stmt = stmt.where(ModelPrice.model.ilike(_like(q)))
    sortable = {
        "id": ModelPrice.id,
        "model": ModelPrice.model,
        "input": ModelPrice.input,
        "output": ModelPrice.output,
    }
    return await paginate(session, stmt, query, sortable, "model")


async def list_groups(session: AsyncSession, query: ListQuery) -> Page:
    """List pricing groups with their tenant counts; filter ``q`` (name)."""
    tenants = (
        select(func.count())
        .select_from(Tenant)
        .where(Tenant.group_id == Group.id)
        .scalar_subquery()
    )
    stmt = select(Group.id, Group.name, Group.ratio, tenants.label("tenants"), Group.updated_at)
    if q := query.filter("q"):
        stmt = stmt.where(Group.name.ilike(_like(q)))
    sortable = {"id": Group.id, "name": Group.name, "ratio": Group.ratio}
    return await paginate(session, stmt, query, sortable, "name")


async def list_tenants(session: AsyncSession, query: ListQuery) -> Page:
    """List tenants with group and balance; filters ``q`` (name), ``group``, ``status``."""
    keys = (
        select(func.count())
        .select_from(ApiKey)
        .where(ApiKey.tenant_id == Tenant.id, ApiKey.status == "active")
        .scalar_subquery()
    )
    stmt = select(
        Tenant.id,
        Tenant.name,
        Group.name.label("group"),
        Tenant.balance,
        Tenant.held,
        Tenant.status,
        keys.label("keys"),
        Tenant.created_at,
    ).join(Group, Group.id == Tenant.group_id)
    if query.tenant_id is not None:
        stmt = stmt.where(Tenant.id == query.tenant_id)
    if q := query.filter("q"):
        stmt = stmt.where(Tenant.name.ilike(_like(q)))
    if group := query.filter("group"):
        stmt = stmt.where(Group.name == group)
    if status := query.filter("status"):
        stmt = stmt.where(Tenant.status == status)
    sortable = {
        "id": Tenant.id,
        "name": Tenant.name,
        "balance": Tenant.balance,
        "created_at": Tenant.created_at,
    }
    return await paginate(session, stmt, query, sortable, "id")


async def list_keys(session: AsyncSession, query: ListQuery) -> Page:
    """List API keys; filters ``tenant`` (name), ``status`` and ``q`` (name or prefix)."""
    stmt = select(
        ApiKey.id,
        Tenant.name.label("tenant"),
        ApiKey.name,
        ApiKey.prefix,
        ApiKey.status,
        ApiKey.models,
        ApiKey.spent,
        ApiKey.spend_limit,
        ApiKey.rpm_limit,
        ApiKey.expires_at,
        ApiKey.created_at,
    ).join(Tenant, Tenant.id == ApiKey.tenant_id)
    if query.tenant_id is not None:
        stmt = stmt.where(ApiKey.tenant_id == query.tenant_id)
    if tenant := query.filter("tenant"):
        stmt = stmt.where(Tenant.name == tenant)
    if status := query.filter("status"):
        stmt = stmt.where(ApiKey.status == status)
    if q := query.filter("q"):
        stmt = stmt.where(or_(ApiKey.name.ilike(_like(q)), ApiKey.prefix.ilike(_like(q))))
    sortable = {
        "id": ApiKey.id,
        "name": ApiKey.name,
        "spent": ApiKey.spent,
        "created_at": ApiKey.created_at,
    }
    return await paginate(session, stmt, query, sortable, "id")


async def list_codes(session: AsyncSession, query: ListQuery) -> Page:
    """List redemption codes and who redeemed them; filters ``batch``, ``status``, ``q``."""
    stmt = select(
        RedeemCode.id,
        RedeemCode.batch,
        RedeemCode.prefix,
        RedeemCode.amount,
        RedeemCode.status,
        RedeemCode.expires_at,
        Tenant.name.label("redeemed_by"),
        RedeemCode.redeemed_at,
        RedeemCode.created_at,
    ).outerjoin(Tenant, Tenant.id == RedeemCode.redeemed_tenant_id)
    if query.tenant_id is not None:
        stmt = stmt.where(RedeemCode.redeemed_tenant_id == query.tenant_id)
    if batch := query.filter("batch"):
        stmt = stmt.where(RedeemCode.batch == batch)
    if status := query.filter("status"):
        stmt = stmt.where(RedeemCode.status == status)
    if q := query.filter("q"):
        stmt = stmt.where(or_(RedeemCode.prefix.ilike(_like(q)), Tenant.name.ilike(_like(q))))
    sortable = {
        "id": RedeemCode.id,
        "batch": RedeemCode.batch,
        "status": RedeemCode.status,
        "redeemed_at": RedeemCode.redeemed_at,
    }
    return await paginate(session, stmt, query, sortable, "id")


async def list_ledger(session: AsyncSession, query: ListQuery) -> Page:
    """List ledger entries, newest first; filters ``tenant`` (name) and ``kind``."""
    stmt = select(
        LedgerEntry.id,
        Tenant.name.label("tenant"),
        LedgerEntry.kind,
        LedgerEntry.amount,
        LedgerEntry.balance_after,
        LedgerEntry.reference,
        LedgerEntry.note,
        LedgerEntry.created_at,
    ).join(Tenant, Tenant.id == LedgerEntry.tenant_id)
    if query.tenant_id is not None:
        stmt = stmt.where(LedgerEntry.tenant_id == query.tenant_id)
    if tenant := query.filter("tenant"):
        stmt = stmt.where(Tenant.name == tenant)
    if kind := query.filter("kind"):
        stmt = stmt.where(LedgerEntry.kind == kind)
    sortable = {"id": LedgerEntry.id, "amount": LedgerEntry.amount}
    return await paginate(session, stmt, query, sortable, "id")


async def list_users(session: AsyncSession, query: ListQuery) -> Page:
    """List console users; filters ``q`` (name), ``role``."""
    stmt = select(
        ConsoleUser.id,
        ConsoleUser.username,
        ConsoleUser.role,
        Tenant.name.label("tenant"),
        ConsoleUser.status,
        ConsoleUser.last_signin_at,
        ConsoleUser.created_at,
    ).outerjoin(Tenant, Tenant.id == ConsoleUser.tenant_id)
    if query.tenant_id is not None:
        stmt = stmt.where(ConsoleUser.tenant_id == query.tenant_id)
    if q := query.filter("q"):
        stmt = stmt.where(ConsoleUser.username.ilike(_like(q)))
    if role := query.filter("role"):
        stmt = stmt.where(ConsoleUser.role == role)
    sortable = {
        "id": ConsoleUser.id,
        "username": ConsoleUser.username,
        "last_signin_at": ConsoleUser.last_signin_at,
    }
    return await paginate(session, stmt, query, sortable, "id")
