"""Domain errors shared by the gateway, the console and the CLI.

The hierarchy::

    TollgateError
    ├── NotFoundError          (also LookupError)
    ├── ConflictError
    ├── InvalidInputError      (also ValueError)
    ├── InsufficientBalanceError
    ├── RateLimitedError
    ├── DatabaseUnavailableError
    └── AuthenticationError
        └── SigninThrottledError
"""

from __future__ import annotations


class TollgateError(Exception):
    """Raised for any failure Tollgate itself recognises; the base of the tree."""


class NotFoundError(TollgateError, LookupError):
    """Raised when a named tenant, group, key, channel or price does not exist."""


class ConflictError(TollgateError):
    """Raised when a create would duplicate a unique name, or a change breaks an invariant."""


class InvalidInputError(TollgateError, ValueError):
    """Raised when an operator or a tenant gives a value that cannot be accepted."""


class InsufficientBalanceError(TollgateError):
    """Raised when a tenant's available balance does not cover a hold or a debit."""


class RateLimitedError(TollgateError):
    """Raised when a key has used up its request window."""


class DatabaseUnavailableError(TollgateError):
    """Raised when no PostgreSQL server can be reached or started."""


class AuthenticationError(TollgateError):
    """Raised when a console user name and password do not match an active user."""


class SigninThrottledError(AuthenticationError):
    """Raised when too many sign-ins failed recently; ``retry_after`` is in seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
