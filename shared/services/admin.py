"""Operator actions on tenants, groups, prices, channels and keys.

The admin CLI and the console both call these; each takes an open ``AsyncSession`` and
commits its own work. Money is passed in as decimal USD and stored as nano-dollars.
"""

from __future__ import annotations

import hashlib
import secrets
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import msgspec
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from shared.errors import ConflictError, InsufficientBalanceError, InvalidInputError, NotFoundError
from shared.models import ApiKey, Channel, Group, Hold, LedgerEntry, ModelPrice, Tenant
from shared.money import format_usd, parse_usd, usd_to_nanos

if TYPE_CHECKING:
    import datetime
    from collections.abc import Sequence

    from sqlalchemy.ext.asyncio import AsyncSession

__all__ = (
    "CHANNEL_KINDS",
    "AuditProblem",
    "add_channel",
    "add_group",
    "add_key",
    "add_tenant",
    "audit",
    "balance_report",
    "credit_tenant",
    "generate_key",
    "hash_key",
    "revoke_key",
    "set_price",
)

CHANNEL_KINDS: Final = ("openai", "anthropic", "gemini", "workers-ai")
"""Upstream protocols a channel may speak."""

KEY_PREFIX: Final = "sk-tg-"
DEFAULT_GROUP: Final = "default"


class AuditProblem(msgspec.Struct, frozen=True):
    """One way in which the books do not add up."""

    tenant: str
    problem: str


def generate_key() -> str:
    """Return a new random API key (``sk-tg-`` and 43 URL-safe characters, 256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """Return the stored form of an API key: its SHA-256 in hex.

    Keys are 256-bit random strings, so a fast hash is enough; passwords are another matter.
    """
    return hashlib.sha256(key.encode()).hexdigest()


def _usd(value: str | Decimal | None, what: str) -> Decimal | None:
    if value is None:
        return None
    try:
        return parse_usd(value)
    except ValueError as exc:
        msg = f"{what}: {exc}"
        raise InvalidInputError(msg) from None


async def _commit(session: AsyncSession, what: str) -> None:
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        msg = f"{what} already exists"
        raise ConflictError(msg) from exc


async def _group(session: AsyncSession, name: str) -> Group:
    group = await session.scalar(select(Group).where(Group.name == name))
    if group is None:
        if name != DEFAULT_GROUP:
            msg = f"group `{name}` does not exist; create it with `tollgate admin group add`"
            raise NotFoundError(msg)
        group = Group(name=DEFAULT_GROUP, ratio=Decimal(1))
        session.add(group)
        await session.flush()
    return group


async def tenant_by_name(session: AsyncSession, name: str) -> Tenant:
    """Return the tenant called ``name``.

    Raises:
        NotFoundError: when there is none.
    """
    tenant = await session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        msg = f"tenant `{name}` does not exist"
        raise NotFoundError(msg)
    return tenant


async def add_group(session: AsyncSession, name: str, ratio: str | Decimal) -> Group:
    """Create a pricing group whose tenants pay ``ratio`` times the list price."""
    value = _usd(ratio, "ratio")
    group = Group(name=name, ratio=value)
    session.add(group)
    await _commit(session, f"group `{name}`")
    return group


async def add_tenant(
    session: AsyncSession, name: str, *, balance: str | Decimal = "0", group: str = DEFAULT_GROUP
) -> Tenant:
    """Create a tenant, crediting its opening balance through the ledger."""
    amount = usd_to_nanos(_usd(balance, "balance") or Decimal(0))
    tenant = Tenant(name=name, group_id=(await _group(session, group)).id, balance=0, held=0)
    session.add(tenant)
    try:
        await session.flush()
    except IntegrityError as exc:
        await session.rollback()
        msg = f"tenant `{name}` already exists"
        raise ConflictError(msg) from exc
    if amount:
        await session.execute(
            text("SELECT tollgate_credit(:tenant, :amount, 'topup', 'opening balance', NULL)"),
            {"tenant": tenant.id, "amount": amount},
        )
    await session.commit()
    await session.refresh(tenant)
    return tenant


async def credit_tenant(
    session: AsyncSession, name: str, amount: str | Decimal, *, kind: str = "adjustment", note: str
) -> int:
    """Add (or, for a negative amount, take) money from a tenant; returns the new balance.

    Raises:
        InsufficientBalanceError: when a debit would take the available balance below zero.
    """
    text_amount = str(amount).strip()
    negative = text_amount.startswith("-")
    nanos = usd_to_nanos(_usd(text_amount.lstrip("-"), "amount") or Decimal(0))
    tenant = await tenant_by_name(session, name)
    try:
        new_balance = await session.scalar(
            text("SELECT tollgate_credit(:tenant, :amount, :kind, :note, NULL)"),
            {
                "tenant": tenant.id,
                "amount": -nanos if negative else nanos,
                "kind": kind,
                "note": note,
            },
        )
    except DBAPIError as exc:
        await session.rollback()
        msg = f"tenant `{name}` cannot cover a debit of {format_usd(nanos)} USD"
        raise InsufficientBalanceError(msg) from exc
    await session.commit()
    return int(new_balance or 0)


async def set_price(
    session: AsyncSession,
    model: str,
    *,
    input: str | Decimal,
    output: str | Decimal,
    cached_input: str | Decimal | None = None,
) -> ModelPrice:
    """Create or replace a model's price (USD per million tokens)."""
    price = await session.scalar(select(ModelPrice).where(ModelPrice.model == model))
    if price is None:
        price = ModelPrice(model=model)
        session.add(price)
    price.input = _usd(input, "input price") or Decimal(0)
    price.output = _usd(output, "output price") or Decimal(0)
    price.cached_input = _usd(cached_input, "cached input price")
    await _commit(session, f"price for `{model}`")
    return price


async def add_channel(
    session: AsyncSession,
    name: str,
    *,
    kind: str,
    base_url: str,
    api_key: str,
    models: Sequence[str],
    model_map: dict[str, str] | None = None,
    priority: int = 0,
    weight: int = 1,
    groups: Sequence[str] | None = None,
    relay_url: str | None = None,
    relay_secret: str | None = None,
    settings: dict[str, Any] | None = None,
) -> Channel:
    """Create an upstream channel.

    Raises:
        InvalidInputError: for an unknown kind, a base URL that is not http(s), or no models.
    """
    if kind not in CHANNEL_KINDS:
        msg = f"channel kind `{kind}` is not one of {', '.join(CHANNEL_KINDS)}"
        raise InvalidInputError(msg)
    if not base_url.startswith(("http://", "https://")):
        msg = f"base URL `{base_url}` must start with http:// or https://"
        raise InvalidInputError(msg)
    if not models:
        msg = "a channel needs at least one model (--models a,b)"
        raise InvalidInputError(msg)
    if weight < 0:
        msg = f"weight must be zero or more, got {weight}"
        raise InvalidInputError(msg)
    channel = Channel(
        name=name,
        kind=kind,
        base_url=base_url.rstrip("/"),
        api_key=api_key,
        models=list(models),
        model_map=dict(model_map or {}),
        priority=priority,
        weight=weight,
        status="enabled",
        groups=list(groups) if groups else None,
        relay_url=relay_url,
        relay_secret=relay_secret,
        settings=dict(settings or {}),
    )
    session.add(channel)
    await _commit(session, f"channel `{name}`")
    return channel


async def add_key(
    session: AsyncSession,
    tenant: str,
    *,
    name: str = "",
    models: Sequence[str] | None = None,
    spend_limit: str | Decimal | None = None,
    rpm_limit: int | None = None,
    expires_at: datetime.datetime | None = None,
) -> tuple[ApiKey, str]:
    """Create an API key for ``tenant``; returns the row and the full key (shown once)."""
    owner = await tenant_by_name(session, tenant)
    limit = _usd(spend_limit, "spend limit")
    if rpm_limit is not None and rpm_limit <= 0:
        msg = f"rpm limit must be positive, got {rpm_limit}"
        raise InvalidInputError(msg)
    key = generate_key()
    row = ApiKey(
        tenant_id=owner.id,
        name=name,
        key_hash=hash_key(key),
        prefix=key[: len(KEY_PREFIX) + 6],
        status="active",
        models=list(models) if models else None,
        spend_limit=None if limit is None else usd_to_nanos(limit),
        rpm_limit=rpm_limit,
        expires_at=expires_at,
        spent=0,
        held=0,
    )
    session.add(row)
    await _commit(session, "an identical key")
    return row, key


async def revoke_key(session: AsyncSession, key_id: int) -> ApiKey:
    """Revoke a key; running gateways refuse it as soon as they hear the notification."""
    row = await session.get(ApiKey, key_id)
    if row is None:
        msg = f"key {key_id} does not exist"
        raise NotFoundError(msg)
    row.status = "revoked"
    await session.commit()
    return row


async def balance_report(session: AsyncSession, name: str) -> dict[str, str]:
    """Return a tenant's balance, the sum of its ledger and its open holds, as USD strings."""
    tenant = await tenant_by_name(session, name)
    ledger_sum = await session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
            LedgerEntry.tenant_id == tenant.id
        )
    )
    holds = await session.scalar(
        select(func.coalesce(func.sum(Hold.amount), 0)).where(Hold.tenant_id == tenant.id)
    )
    return {
        "tenant": tenant.name,
        "balance": format_usd(tenant.balance),
        "ledger_sum": format_usd(int(ledger_sum or 0)),
        "holds": format_usd(int(holds or 0)),
        "available": format_usd(tenant.balance - tenant.held),
    }


async def audit(session: AsyncSession) -> list[AuditProblem]:
    """Check every tenant's books; an empty list means they add up.

    Checks that balance equals the sum of the ledger, that ``held`` equals the sum of open
    holds (for tenants and keys), that every ledger entry's ``balance_after`` chains, and
    that no hold has outlived its expiry.
    """
    rows = await session.execute(
        text(
            """
            SELECT t.name, t.balance, t.held,
                   coalesce((SELECT sum(amount) FROM ledger_entry l WHERE l.tenant_id = t.id), 0),
                   coalesce((SELECT sum(amount) FROM hold h WHERE h.tenant_id = t.id), 0),
                   (SELECT count(*) FROM hold h WHERE h.tenant_id = t.id AND h.expires_at < now()),
                   (SELECT count(*) FROM (
                        SELECT balance_after, amount,
                               lag(balance_after) OVER (ORDER BY id) AS previous
                        FROM ledger_entry l WHERE l.tenant_id = t.id) chain
                    WHERE balance_after <> coalesce(previous, 0) + amount),
                   (SELECT count(*) FROM api_key k WHERE k.tenant_id = t.id AND k.held <>
                        coalesce((SELECT sum(amount) FROM hold h WHERE h.key_id = k.id), 0))
            FROM tenant t ORDER BY t.id
            """
        )
    )
    problems: list[AuditProblem] = []
    for name, balance, held, ledger, holds, expired, broken, keys in rows:
        if balance != ledger:
            detail = f"balance {format_usd(balance)} != ledger sum {format_usd(ledger)}"
            problems.append(AuditProblem(name, detail))
        if held != holds:
            detail = f"held {format_usd(held)} != open holds {format_usd(holds)}"
            problems.append(AuditProblem(name, detail))
        if expired:
            problems.append(AuditProblem(name, f"{expired} hold(s) past their expiry"))
        if broken:
            problems.append(
                AuditProblem(name, f"{broken} ledger entr(ies) break the balance chain")
            )
        if keys:
            problems.append(AuditProblem(name, f"{keys} key(s) whose held amount != open holds"))
    return problems
