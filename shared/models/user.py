"""Who may use the console: admins and tenant users, their sessions and failed sign-ins."""

from __future__ import annotations

import datetime

from sqlalchemy import DateTime, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base

__all__ = ("ConsoleSession", "ConsoleUser", "SigninFailure")


class ConsoleUser(Base):
    """A person who signs in to the console, either an admin or a user of one tenant."""

    __tablename__ = "console_user"

    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    """An argon2id hash in PHC string form."""
    role: Mapped[str] = mapped_column(String(16))
    """``admin`` or ``tenant``."""
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.id"), default=None)
    """The tenant a ``tenant`` user belongs to; unset for admins."""
    status: Mapped[str] = mapped_column(String(16), default="active")
    """``active`` or ``disabled``."""
    last_signin_at: Mapped[datetime.datetime | None] = mapped_column(
        DateTime(timezone=True), default=None
    )


class ConsoleSession(Base):
    """A signed-in browser, known by the SHA-256 of its cookie's token.

    A session starts with a one-time ``ticket`` that the browser exchanges for the cookie,
    so the token itself never appears in a URL.
    """

    __tablename__ = "console_session"

    user_id: Mapped[int] = mapped_column(ForeignKey("console_user.id", ondelete="CASCADE"))
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    ticket_hash: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    expires_at: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True))
    client_ip: Mapped[str] = mapped_column(String(64), default="")


class SigninFailure(Base):
    """One refused sign-in; recent ones throttle further attempts by name and by address."""

    __tablename__ = "signin_failure"

    username: Mapped[str] = mapped_column(String(64))
    client_ip: Mapped[str] = mapped_column(String(64))
