"""Usage reports: the request log, dashboards and a tenant's spend, straight from SQL.

All of them read ``usage_log`` (partitioned by month) and accept a ``tenant_id`` that, when
set, narrows every figure to that tenant. The request log is paged newest first without a
total count, so that a page costs one short index scan however many rows there are.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any, Final

import msgspec
from sqlalchemy import Select, and_, func, literal_column, select, text

from shared.models import ApiKey, Channel, Tenant, usage_log
from shared.services.listings import ListQuery, Page, paginate

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

__all__ = (
    "RANGES",
    "Dashboard",
    "TenantOverview",
    "dashboard",
    "list_logs",
    "log_detail",
    "tenant_overview",
)

RANGES: Final = {
    "24h": (datetime.timedelta(hours=24), "hour"),
    "7d": (
        datetime.timedelta(days=7),
        "day",
    ),
    "30d": (datetime.timedelta(days=30), "day"),
}
"""Dashboard ranges: how far back, and the width of one chart bucket."""
LOG_STATUSES: Final = ("ok", "error", "truncated")

_u = usage_log.c


class Dashboard(msgspec.Struct, kw_only=True):
    """Figures and chart series of one dashboard range."""

    requests: int
    input_tokens: int
    output_tokens: int
    spend: int
    """Nano-dollars."""
    errors: int
    p50_ms: int
    p95_ms: int
    series: list[dict[str, Any]]
    """One point per bucket: requests, tokens, spend (USD float for charts), error rate (%)."""
    by_model: list[dict[str, Any]]
    by_channel: list[dict[str, Any]]
    by_tenant: list[dict[str, Any]]


class TenantOverview(msgspec.Struct, kw_only=True):
    """A tenant's money and this month's usage."""

    name: str
    group: str
    balance: int
    held: int
    month_spend: int
    month_requests: int
    month_tokens: int
    active_keys: int


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _parse_time(value: str) -> datetime.datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


async def _resolve_id(session: AsyncSession, value: str, by_name: Select[Any]) -> int:
    """Return ``value`` as an id, or look it up by name (-1 when nothing matches)."""
    if value.isdigit():
        return int(value)
    found = await session.scalar(by_name)
    return -1 if found is None else int(found)


async def list_logs(session: AsyncSession, query: ListQuery) -> Page:
    """List requests, newest first.

    Filters: ``tenant`` (id or name), ``key`` (id or prefix), ``model``, ``channel``
    (id or name), ``status`` (ok, error, truncated), ``since`` and ``until`` (ISO 8601).
    """
    stmt = select(
        _u.id,
        _u.created_at,
        _u.request_id,
        _u.tenant_id,
        Tenant.name.label("tenant"),
        _u.key_id,
        _u.channel_id,
        Channel.name.label("channel"),
        _u.model,
        _u.endpoint,
        _u.stream,
        _u.status,
        _u.http_status,
        _u.input_tokens,
        _u.output_tokens,
        _u.cost,
        _u.latency_ms,
    ).select_from(
        usage_log.outerjoin(Tenant, Tenant.id == _u.tenant_id).outerjoin(
            Channel, Channel.id == _u.channel_id
        )
    )
    if query.tenant_id is not None:
        stmt = stmt.where(_u.tenant_id == query.tenant_id)
    if tenant := query.filter("tenant"):
        tenant_id = await _resolve_id(
            session, tenant, select(Tenant.id).where(Tenant.name == tenant)
        )
        stmt = stmt.where(_u.tenant_id == tenant_id)
    if key := query.filter("key"):
        key_id = await _resolve_id(session, key, select(ApiKey.id).where(ApiKey.prefix == key))
        stmt = stmt.where(_u.key_id == key_id)
    if channel := query.filter("channel"):
        channel_id = await _resolve_id(
            session, channel, select(Channel.id).where(Channel.name == channel)
        )
        stmt = stmt.where(_u.channel_id == channel_id)
    if model := query.filter("model"):
        stmt = stmt.where(_u.model == model)
    if (status := query.filter("status")) in LOG_STATUSES:
        stmt = stmt.where(_u.status == status)
    if since := _parse_time(query.filter("since")):
        stmt = stmt.where(_u.created_at >= since)
    if until := _parse_time(query.filter("until")):
        stmt = stmt.where(_u.created_at < until)
    sortable = {"id": _u.id, "created_at": _u.created_at}
    newest_first = ListQuery(
        page=query.page,
        page_size=query.page_size,
        sort="created_at",
        desc=True if query.sort != "created_at" else query.desc,
        filters=query.filters,
        tenant_id=query.tenant_id,
    )
    return await paginate(session, stmt, newest_first, sortable, "created_at", count=False)


async def log_detail(
    session: AsyncSession, log_id: int, *, tenant_id: int | None
) -> dict[str, Any] | None:
    """Return every column of one request (None when absent or another tenant's)."""
    stmt = (
        select(usage_log, Tenant.name.label("tenant"), Channel.name.label("channel"))
        .select_from(
            usage_log.outerjoin(Tenant, Tenant.id == _u.tenant_id).outerjoin(
                Channel, Channel.id == _u.channel_id
            )
        )
        .where(_u.id == log_id)
    )
    if tenant_id is not None:
        stmt = stmt.where(_u.tenant_id == tenant_id)
    row = (await session.execute(stmt)).first()
    if row is None:
        return None
    detail = dict(row._mapping)
    if tenant_id is not None:
        detail.pop("channel", None)
        detail.pop("channel_id", None)
        detail.pop("upstream_model", None)
    return detail


async def dashboard(
    session: AsyncSession, range_name: str = "24h", *, tenant_id: int | None = None
) -> Dashboard:
    """Aggregate the usage log over a range (``24h``, ``7d`` or ``30d``)."""
    span, unit = RANGES.get(range_name, RANGES["24h"])
    until = _now()
    since = until - span
    scope = [_u.created_at >= since]
    if tenant_id is not None:
        scope.append(_u.tenant_id == tenant_id)
    where = and_(*scope)

    totals = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(_u.input_tokens), 0),
                func.coalesce(func.sum(_u.output_tokens), 0),
                func.coalesce(func.sum(_u.cost), 0),
                func.count().filter(_u.status == "error"),
                func.percentile_disc(0.5).within_group(_u.latency_ms),
                func.percentile_disc(0.95).within_group(_u.latency_ms),
            ).where(where)
        )
    ).one()
    series = await _series(session, since, until, unit, tenant_id)

    async def top(column: Any, names: Any = None, *, latency: bool = False) -> list[dict[str, Any]]:
        # Group by the id first and name only the ten winners; percentiles cost a sort
        # per group, so only the per-model breakdown (which shows them) computes them.
        measures = [
            column.label("key"),
            func.count().label("requests"),
            (func.sum(_u.input_tokens) + func.sum(_u.output_tokens)).label("tokens"),
            func.sum(_u.cost).label("spend"),
        ]
        if latency:
            measures += [
                func.percentile_disc(0.5).within_group(_u.latency_ms).label("p50_ms"),
                func.percentile_disc(0.95).within_group(_u.latency_ms).label("p95_ms"),
            ]
        ranked = (
            select(*measures)
            .where(where)
            .group_by(column)
            .order_by(func.count().desc())
            .limit(10)
            .subquery()
        )
        stmt = select(ranked)
        if names is not None:
            label = func.coalesce(names.name, literal_column("'—'")).label("label")
            stmt = select(ranked, label).outerjoin(names, names.id == ranked.c.key)
        rows = await session.execute(stmt.order_by(ranked.c.requests.desc()))
        return [
            {
                "name": str(r.label if names is not None else r.key),
                "requests": int(r.requests),
                "tokens": int(r.tokens or 0),
                "spend": int(r.spend or 0),
                "spend_usd": int(r.spend or 0) / 1e9,
                "p50_ms": int(getattr(r, "p50_ms", 0) or 0),
                "p95_ms": int(getattr(r, "p95_ms", 0) or 0),
            }
            for r in rows
        ]

    by_model = await top(_u.model, latency=True)
    by_channel: list[dict[str, Any]] = []
    by_tenant: list[dict[str, Any]] = []
    if tenant_id is None:
        by_channel = await top(_u.channel_id, Channel)
        by_tenant = await top(_u.tenant_id, Tenant)
    return Dashboard(
        requests=int(totals[0]),
        input_tokens=int(totals[1]),
        output_tokens=int(totals[2]),
        spend=int(totals[3]),
        errors=int(totals[4]),
        p50_ms=int(totals[5] or 0),
        p95_ms=int(totals[6] or 0),
        series=series,
        by_model=by_model,
        by_channel=by_channel,
        by_tenant=by_tenant,
    )


async def _series(
    session: AsyncSession,
    since: datetime.datetime,
    until: datetime.datetime,
    unit: str,
    tenant_id: int | None,
) -> list[dict[str, Any]]:
    # The unit comes from RANGES only; buckets are UTC and empty ones are filled with zeros.
    rows = await session.execute(
        text(
            f"""
            WITH buckets AS (
                SELECT generate_series(
                    date_trunc('{unit}', CAST(:since AS timestamptz) AT TIME ZONE 'UTC'),
                    date_trunc('{unit}', CAST(:until AS timestamptz) AT TIME ZONE 'UTC'),
                    INTERVAL '1 {unit}') AS bucket
            ), usage AS (
                SELECT date_trunc('{unit}', created_at AT TIME ZONE 'UTC') AS bucket,
                       count(*) AS requests,
                       sum(input_tokens + output_tokens) AS tokens,
                       sum(cost) AS spend,
                       count(*) FILTER (WHERE status = 'error') AS errors
                FROM usage_log
                WHERE created_at >= :since AND (CAST(:tenant AS BIGINT) IS NULL
                                                OR tenant_id = :tenant)
                GROUP BY 1
            )
            SELECT b.bucket, coalesce(u.requests, 0), coalesce(u.tokens, 0),
                   coalesce(u.spend, 0), coalesce(u.errors, 0)
            FROM buckets b LEFT JOIN usage u USING (bucket)
            ORDER BY b.bucket
            """  # noqa: S608 - the unit is one of two constants, values are bound
        ),
        {"since": since, "until": until, "tenant": tenant_id},
    )
    label = "%m-%d %H:00" if unit == "hour" else "%Y-%m-%d"
    return [
        {
            "bucket": bucket.strftime(label),
            "requests": int(requests),
            "tokens": int(tokens),
            "spend_usd": int(spend) / 1e9,
            "error_rate": round(100 * int(errors) / int(requests), 2) if requests else 0,
        }
        for bucket, requests, tokens, spend, errors in rows
    ]


async def tenant_overview(session: AsyncSession, tenant_id: int) -> TenantOverview:
    """Return a tenant's balance and this calendar month's (UTC) usage."""
    tenant = (
        await session.execute(
            text(
                "SELECT t.name, g.name, t.balance, t.held, "
                "(SELECT count(*) FROM api_key k WHERE k.tenant_id = t.id "
                " AND k.status = 'active') "
                "FROM tenant t JOIN tenant_group g ON g.id = t.group_id WHERE t.id = :t"
            ),
            {"t": tenant_id},
        )
    ).one()
    start = _now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    month = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(_u.cost), 0),
                func.coalesce(func.sum(_u.input_tokens + _u.output_tokens), 0),
            ).where(_u.tenant_id == tenant_id, _u.created_at >= start)
        )
    ).one()
    return TenantOverview(
        name=tenant[0],
        group=tenant[1],
        balance=int(tenant[2]),
        held=int(tenant[3]),
        active_keys=int(tenant[4]),
        month_requests=int(month[0]),
        month_spend=int(month[1]),
        month_tokens=int(month[2]),
    )
