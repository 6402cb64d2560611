"""Admission and settlement: the two SQL round trips of a request.

:func:`admit` checks the key's rate window and places a hold for the worst-case cost in one
call of ``tollgate_admit``; :func:`settle` turns the hold into the exact charge, the ledger
entry and the usage row in one call of ``tollgate_settle``. Both are single statements, so
each is one round trip and one transaction. A hold left by a dead worker expires and is
released by :func:`reap_holds`, which runs on one worker at a time under an advisory lock.
"""

from __future__ import annotations

import datetime
import logging
from typing import TYPE_CHECKING, Final

import msgspec

from gateway.errors import GatewayError
from shared.money import format_usd

if TYPE_CHECKING:
    import asyncpg

    from gateway.snapshot import KeyEntry
    from shared.money import Usage

logger = logging.getLogger(__name__)

__all__ = ("UsageRecord", "admit", "reap_holds", "settle")

_REAPER_LOCK: Final = 0x7011_6A7E


class UsageRecord(msgspec.Struct, kw_only=True):
    """The usage-log row written at settlement (tenant and key come from the hold)."""

    created_at: datetime.datetime
    request_id: str
    tenant_id: int
    key_id: int
    channel_id: int | None
    model: str
    upstream_model: str | None
    endpoint: str
    stream: bool
    status: str
    http_status: int
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False
    latency_ms: int = 0
    first_byte_ms: int | None = None
    attempts: int = 0
    error: str | None = None

    def apply(self, usage: Usage) -> None:
        """Copy token counts from ``usage``."""
        self.input_tokens = usage.input_tokens
        self.cached_input_tokens = usage.cached_input_tokens
        self.cache_write_tokens = usage.cache_write_tokens
        self.output_tokens = usage.output_tokens
        self.reasoning_tokens = usage.reasoning_tokens
        self.estimated = usage.estimated


async def admit(
    pool: asyncpg.Pool, *, request_id: str, key: KeyEntry, amount: int, ttl: int
) -> dict[str, str]:
    """Place a hold of ``amount`` nano-dollars; returns rate-limit headers for the response.

    Raises:
        GatewayError: 429 ``rate_limit_exceeded`` when the key's window is used up, 429
            ``insufficient_quota`` when the balance (or the key's spend limit) cannot cover
            the hold; both with ``x-should-retry`` set as the OpenAI SDKs read it.
    """
    row = await pool.fetchrow(
        "SELECT * FROM tollgate_admit($1, $2, $3, $4, $5, $6)",
        request_id,
        key.tenant_id,
        key.id,
        amount,
        ttl,
        key.rpm_limit,
    )
    if row is None:
        msg = "tollgate_admit returned no row"
        raise RuntimeError(msg)
    headers: dict[str, str] = {}
    if key.rpm_limit is not None:
        headers = {
            "x-ratelimit-limit-requests": str(key.rpm_limit),
            "x-ratelimit-remaining-requests": str(row["remaining"]),
            "x-ratelimit-reset-requests": f"{row['reset_seconds']}s",
        }
    outcome = row["outcome"]
    if outcome == "ok":
        return headers
    if outcome == "rate_limited":
        retry = str(row["reset_seconds"])
        msg = f"rate limit reached: this key allows {key.rpm_limit} requests per minute"
        raise GatewayError(
            429,
            "rate_limit_exceeded",
            msg,
            type="requests",
            headers={**headers, "retry-after": retry, "x-should-retry": "true"},
        )
    if outcome == "key_limit":
        msg = "this key has reached its spend limit; raise the limit or use another key"
    else:
        msg = (
            "you exceeded your current quota: the balance does not cover this request "
            f"(up to {format_usd(amount)} USD is held while it runs); top up to continue"
        )
    raise GatewayError(
        429,
        "insufficient_quota",
        msg,
        type="insufficient_quota",
        headers={**headers, "x-should-retry": "false"},
    )


async def settle(pool: asyncpg.Pool, record: UsageRecord, charge: int) -> str:
    """Replace the request's hold with ``charge`` nano-dollars and log its usage, once."""
    row = await pool.fetchrow(
        "SELECT * FROM tollgate_settle($1, $2, $3::jsonb)",
        record.request_id,
        charge,
        msgspec.json.encode(record).decode(),
    )
    if row is None:
        msg = "tollgate_settle returned no row"
        raise RuntimeError(msg)
    outcome: str = row["outcome"]
    if outcome == "duplicate":
        logger.error("settlement repeated, ignored", extra={"request_id": record.request_id})
    return outcome


async def reap_holds(pool: asyncpg.Pool) -> int:
    """Release expired holds if no other worker is doing it; returns how many."""
    async with pool.acquire() as connection:
        if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", _REAPER_LOCK):
            return 0
        try:
            released: int = await connection.fetchval("SELECT tollgate_reap_holds()")
            await connection.execute("SELECT tollgate_ensure_usage_partitions(2)")
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", _REAPER_LOCK)
    if released:
        logger.warning("released expired holds", extra={"count": released})
    return released
