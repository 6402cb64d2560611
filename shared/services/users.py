"""Console users, their passwords, sessions and the throttling of failed sign-ins.

Passwords are argon2id hashes (argon2-cffi's defaults, rehashed when those change).
A sign-in hands out a one-time *ticket*; the browser exchanges it, once and within a
minute, for the session *token* that lives only in an HttpOnly cookie. Only SHA-256
hashes of tickets and tokens are stored. Failed sign-ins are counted per user name and per
client address over a sliding window; past the limit, attempts are refused without
checking the password.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import hashlib
import secrets
from typing import TYPE_CHECKING, Final

import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import IntegrityError

from shared.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    SigninThrottledError,
)
from shared.models import ConsoleSession, ConsoleUser, Setting, SigninFailure, Tenant

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

__all__ = (
    "AuthenticationError",
    "Principal",
    "SigninThrottledError",
    "create_user",
    "ensure_first_admin",
    "exchange_ticket",
    "hash_secret",
    "resolve_session",
    "set_password",
    "set_user_status",
    "sign_in",
    "sign_out",
)

FIRST_ADMIN: Final = "admin"
"""User name of the admin created on the first start."""
MIN_PASSWORD: Final = 10
"""Characters a password needs at least."""
SESSION_IDLE: Final = datetime.timedelta(hours=12)
"""A session unused this long expires, unless the ``session_hours`` setting says otherwise."""
SESSION_MAX: Final = datetime.timedelta(days=7)
"""No session lives longer than this, used or not."""
TICKET_TTL: Final = datetime.timedelta(seconds=60)
"""Time the browser has to exchange a sign-in ticket for its cookie."""
THROTTLE_WINDOW: Final = datetime.timedelta(minutes=15)
"""Failed sign-ins older than this no longer count."""
MAX_FAILURES_PER_USER: Final = 5
"""Failed sign-ins for one user name within the window before attempts are refused."""
MAX_FAILURES_PER_ADDRESS: Final = 20
"""Failed sign-ins from one client address within the window before attempts are refused."""
_TOUCH_AFTER: Final = datetime.timedelta(minutes=1)


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who is signed in, as every console event handler sees it."""

    user_id: int
    username: str
    role: str
    """``admin`` or ``tenant``."""
    tenant_id: int | None
    tenant_name: str | None
    session_id: int

    @property
    def is_admin(self) -> bool:
        """True for operators, who see every tenant."""
        return self.role == "admin"


@functools.cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    return _hasher().hash(secrets.token_urlsafe(16))


def hash_secret(value: str) -> str:
    """Return the stored form of a random token, ticket or code: its SHA-256 in hex."""
    return hashlib.sha256(value.encode()).hexdigest()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


async def _session_idle(session: AsyncSession) -> datetime.timedelta:
    """Return the idle timeout: the ``session_hours`` setting, else :data:`SESSION_IDLE`."""
    hours = await session.scalar(select(Setting.value).where(Setting.name == "session_hours"))
    if isinstance(hours, int) and 1 <= hours <= SESSION_MAX // datetime.timedelta(hours=1):
        return datetime.timedelta(hours=hours)
    return SESSION_IDLE


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        msg = f"a password needs at least {MIN_PASSWORD} characters, got {len(password)}"
        raise InvalidInputError(msg)


async def _hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher().hash, password)


async def _verify(password_hash: str, password: str) -> bool:
    try:
        return await asyncio.to_thread(_hasher().verify, password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def create_user(
    session: AsyncSession,
    username: str,
    password: str,
    *,
    role: str,
    tenant: str | None = None,
) -> ConsoleUser:
    """Create a console user; a ``tenant`` user belongs to the tenant called ``tenant``.

    Raises:
        InvalidInputError: for an unknown role, a short password, or a tenant user
            without a tenant.
        NotFoundError: when the tenant does not exist.
        ConflictError: when the user name is taken.
    """
    if role not in ("admin", "tenant"):
        msg = f"role `{role}` is not one of admin, tenant"
        raise InvalidInputError(msg)
    _check_password(password)
    tenant_id: int | None = None
    if role == "tenant":
        if not tenant:
            msg = "a tenant user needs a tenant"
            raise InvalidInputError(msg)
        tenant_id = await session.scalar(select(Tenant.id).where(Tenant.name == tenant))
        if tenant_id is None:
            msg = f"tenant `{tenant}` does not exist"
            raise NotFoundError(msg)
    user = ConsoleUser(
        username=username,
        password_hash=await _hash_password(password),
        role=role,
        tenant_id=tenant_id,
        status="active",
    )
    session.add(user)
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        msg = f"user `{username}` already exists"
        raise ConflictError(msg) from exc
    return user


async def set_password(session: AsyncSession, username: str, password: str) -> ConsoleUser:
    """Set a user's password and end all of the user's sessions.

    Raises:
        NotFoundError: when there is no such user.
    """
    _check_password(password)
    user = await session.scalar(select(ConsoleUser).where(ConsoleUser.username == username))
    if user is None:
        msg = f"user `{username}` does not exist"
        raise NotFoundError(msg)
    user.password_hash = await _hash_password(password)
    await session.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user.id))
    await session.execute(delete(SigninFailure).where(SigninFailure.username == username))
    await session.commit()
    return user


async def set_user_status(session: AsyncSession, user_id: int, status: str) -> ConsoleUser:
    """Enable or disable a user; disabling ends the user's sessions.

    Raises:
        NotFoundError: when there is no such user.
    """
    if status not in ("active", "disabled"):
        msg = f"status `{status}` is not one of active, disabled"
        raise InvalidInputError(msg)
    user = await session.get(ConsoleUser, user_id)
    if user is None:
        msg = f"user {user_id} does not exist"
        raise NotFoundError(msg)
    user.status = status
    if status == "disabled":
        await session.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user.id))
    await session.commit()
    return user


async def ensure_first_admin(session: AsyncSession, password: str | None = None) -> str | None:
    """Create the first admin when no admin exists; return its password, else None.

    The password is random unless given; the caller prints it once, it is not stored.
    """
    exists = await session.scalar(
        select(func.count()).select_from(ConsoleUser).where(ConsoleUser.role == "admin")
    )
    if exists:
        return None
    secret = password or secrets.token_urlsafe(12)
    try:
        await create_user(session, FIRST_ADMIN, secret, role="admin")
    except ConflictError:
        return None
    return secret


async def _throttle(session: AsyncSession, username: str, client_ip: str) -> None:
    since = _now() - THROTTLE_WINDOW
    row = (
        await session.execute(
            text(
                "SELECT count(*) FILTER (WHERE username = :u), "
                "min(created_at) FILTER (WHERE username = :u), "
                "count(*) FILTER (WHERE client_ip = :ip), "
                "min(created_at) FILTER (WHERE client_ip = :ip) "
                "FROM signin_failure WHERE created_at > :since "
                "AND (username = :u OR client_ip = :ip)"
            ),
            {"u": username, "ip": client_ip, "since": since},
        )
    ).one()
    by_user, user_oldest, by_address, address_oldest = row
    oldest = None
    if by_user >= MAX_FAILURES_PER_USER:
        oldest = user_oldest
    elif by_address >= MAX_FAILURES_PER_ADDRESS:
        oldest = address_oldest
    if oldest is not None:
        wait = max(1, int((oldest + THROTTLE_WINDOW - _now()).total_seconds()) + 1)
        msg = f"too many failed sign-ins; try again in {wait} s"
        raise SigninThrottledError(msg, wait)


async def sign_in(session: AsyncSession, username: str, password: str, client_ip: str) -> str:
    """Check a user name and password; return a one-time ticket for the session cookie.

    Raises:
        SigninThrottledError: when recent failures for this name or address passed the limit.
        AuthenticationError: when the name and password do not match an active user.
    """
    username = username.strip()
    await _throttle(session, username, client_ip)
    user = await session.scalar(select(ConsoleUser).where(ConsoleUser.username == username))
    # Verify against a dummy hash for unknown names, so timing does not reveal them.
    matches = await _verify(user.password_hash if user else _dummy_hash(), password)
    if user is None or not matches or user.status != "active":
        session.add(SigninFailure(username=username[:64], client_ip=client_ip[:64]))
        await session.commit()
        msg = "the user name or password is wrong"
        raise AuthenticationError(msg)
    if _hasher().check_needs_rehash(user.password_hash):
        user.password_hash = await _hash_password(password)
    user.last_signin_at = _now()
    await session.execute(delete(SigninFailure).where(SigninFailure.username == username))
    await session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < _now()))
    ticket = secrets.token_urlsafe(32)
    now = _now()
    session.add(
        ConsoleSession(
            user_id=user.id,
            ticket_hash=hash_secret(ticket),
            expires_at=now + TICKET_TTL,
            last_seen_at=now,
            client_ip=client_ip[:64],
        )
    )
    await session.commit()
    return ticket


async def exchange_ticket(session: AsyncSession, ticket: str) -> str:
    """Turn a fresh sign-in ticket into a session token, once.

    Raises:
        NotFoundError: when the ticket is unknown, used or expired.
    """
    now = _now()
    token = secrets.token_urlsafe(32)
    idle = await _session_idle(session)
    session_id = await session.scalar(
        update(ConsoleSession)
        .where(
            ConsoleSession.ticket_hash == hash_secret(ticket),
            ConsoleSession.token_hash.is_(None),
            ConsoleSession.expires_at > now,
        )
        .values(
            ticket_hash=None,
            token_hash=hash_secret(token),
            expires_at=now + idle,
            last_seen_at=now,
        )
        .returning(ConsoleSession.id)
    )
    await session.commit()
    if session_id is None:
        msg = "the sign-in ticket is unknown, used or expired"
        raise NotFoundError(msg)
    return token


async def resolve_session(session: AsyncSession, token: str) -> Principal | None:
    """Return who holds the session ``token``, or None when it is unknown or expired.

    A session in use is extended (at most once a minute), up to its maximum age.
    """
    if not token:
        return None
    now = _now()
    row = (
        await session.execute(
            select(
                ConsoleSession.id,
                ConsoleSession.last_seen_at,
                ConsoleSession.created_at,
                ConsoleUser.id,
                ConsoleUser.username,
                ConsoleUser.role,
                ConsoleUser.tenant_id,
                Tenant.name,
            )
            .join(ConsoleUser, ConsoleUser.id == ConsoleSession.user_id)
            .outerjoin(Tenant, Tenant.id == ConsoleUser.tenant_id)
            .where(
                ConsoleSession.token_hash == hash_secret(token),
                ConsoleSession.expires_at > now,
                ConsoleUser.status == "active",
            )
        )
    ).one_or_none()
    if row is None:
        return None
    session_id, last_seen, created, user_id, username, role, tenant_id, tenant_name = row
    if now - last_seen > _TOUCH_AFTER:
        idle = await _session_idle(session)
        await session.execute(
            update(ConsoleSession)
            .where(ConsoleSession.id == session_id)
            .values(last_seen_at=now, expires_at=min(now + idle, created + SESSION_MAX))
        )
        await session.commit()
    return Principal(
        user_id=user_id,
        username=username,
        role=role,
        tenant_id=tenant_id,
        tenant_name=tenant_name,
        session_id=session_id,
    )


async def sign_out(session: AsyncSession, token: str) -> None:
    """End the session ``token`` (a no-op for an unknown one)."""
    if token:
        await session.execute(
            delete(ConsoleSession).where(ConsoleSession.token_hash == hash_secret(token))
        )
        await session.commit()
