"""Authentication of tenants' API keys against the in-memory snapshot (no SQL)."""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING

from gateway.errors import GatewayError

if TYPE_CHECKING:
    from gateway.snapshot import KeyEntry, Snapshot, TenantEntry

__all__ = ("authenticate", "bearer_token")


def bearer_token(authorization: str | None) -> str | None:
    """Return the token of an ``Authorization: Bearer …`` header value."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def authenticate(snapshot: Snapshot, token: str | None) -> tuple[KeyEntry, TenantEntry]:
    """Return the key and tenant a presented token belongs to.

    Raises:
        GatewayError: 401 ``missing_api_key`` or ``invalid_api_key`` (unknown, revoked or
            expired key), 403 ``tenant_suspended`` for a tenant that is not active.
    """
    if not token:
        msg = (
            "You didn't provide an API key. Send it as `Authorization: Bearer YOUR_KEY` "
            "(or `x-api-key`)."
        )
        raise GatewayError(401, "missing_api_key", msg, type="invalid_request_error")
    key = snapshot.keys.get(hashlib.sha256(token.encode()).hexdigest())
    if key is None or not key.is_usable(time.time()):
        shown = f"{token[:6]}…{token[-4:]}" if len(token) > 12 else "***"
        msg = f"Incorrect API key provided: {shown}. Check the key, or ask for a new one."
        raise GatewayError(401, "invalid_api_key", msg, type="invalid_request_error")
    tenant = snapshot.tenants.get(key.tenant_id)
    if tenant is None or tenant.status != "active":
        msg = "This key's account is suspended."
        raise GatewayError(403, "tenant_suspended", msg, type="permission_error")
    return key, tenant
