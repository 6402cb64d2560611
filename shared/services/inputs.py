"""What operators and tenants may type into the console, as msgspec structs.

Lengths come from the SQLAlchemy columns the values end up in, so a form refuses what the
database would. The console validates each field on its own (to show every field's error at
once) and then the whole struct; the services still check what only the database knows.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec

from shared.models import ApiKey, Channel, ConsoleUser, Group, ModelPrice, RedeemCode, Tenant

__all__ = (
    "AdjustmentInput",
    "ChannelInput",
    "CodeBatchInput",
    "GroupInput",
    "KeyInput",
    "KeyModelsInput",
    "PasswordInput",
    "PriceInput",
    "RedeemInput",
    "SettingsInput",
    "SignInInput",
    "TenantInput",
    "UserInput",
    "field_errors",
)

NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._@-]*$"
"""Names of groups, tenants, channels and users: no spaces, no leading punctuation."""
USD_PATTERN: Final = r"^[0-9]{1,10}(\.[0-9]{1,9})?$"
"""A non-negative USD amount with at most nine decimal places."""
SIGNED_USD_PATTERN: Final = r"^-?[0-9]{1,10}(\.[0-9]{1,9})?$"
RATIO_PATTERN: Final = r"^[0-9]{1,6}(\.[0-9]{1,6})?$"
URL_PATTERN: Final = r"^https?://[^\s]+$"
MODELS_PATTERN: Final = r"^[^,\s]+(\s*,\s*[^,\s]+)*$"
"""Comma-separated model names."""


def _length(column: Any) -> int:
    return int(column.property.columns[0].type.length)


def _name_meta(column: Any) -> msgspec.Meta:
    return msgspec.Meta(min_length=1, max_length=_length(column), pattern=NAME_PATTERN)


Usd = Annotated[str, msgspec.Meta(pattern=USD_PATTERN)]
OptionalUsd = Annotated[str, msgspec.Meta(pattern=f"^$|{USD_PATTERN[1:-1]}$")]
Password = Annotated[str, msgspec.Meta(min_length=10, max_length=256)]
Models = Annotated[str, msgspec.Meta(min_length=1, max_length=4000, pattern=MODELS_PATTERN)]
OptionalModels = Annotated[str, msgspec.Meta(max_length=4000, pattern=f"^$|{MODELS_PATTERN[1:]}")]
GroupName = Annotated[str, _name_meta(Group.name)]
TenantName = Annotated[str, _name_meta(Tenant.name)]
ChannelName = Annotated[str, _name_meta(Channel.name)]
BatchName = Annotated[str, _name_meta(RedeemCode.batch)]
Username = Annotated[str, _name_meta(ConsoleUser.username)]


class SignInInput(msgspec.Struct, kw_only=True):
    """The sign-in form."""

    username: Annotated[str, msgspec.Meta(min_length=1, max_length=_length(ConsoleUser.username))]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class GroupInput(msgspec.Struct, kw_only=True):
    """A pricing group."""

    name: GroupName
    ratio: Annotated[str, msgspec.Meta(pattern=RATIO_PATTERN)]
    """Multiplier of every price, e.g. ``0.8``."""


class PriceInput(msgspec.Struct, kw_only=True):
    """A model's price, USD per million tokens."""

    model: Annotated[
        str, msgspec.Meta(min_length=1, max_length=_length(ModelPrice.model), pattern=r"^\S+$")
    ]
    input: Usd
    output: Usd
    cached_input: OptionalUsd = ""


class ChannelInput(msgspec.Struct, kw_only=True):
    """An upstream channel."""

    name: ChannelName
    kind: Literal["openai", "anthropic", "gemini", "workers-ai"]
    base_url: Annotated[str, msgspec.Meta(max_length=2000, pattern=URL_PATTERN)]
    models: Models
    api_key: Annotated[str, msgspec.Meta(max_length=4000)] = ""
    priority: Annotated[int, msgspec.Meta(ge=-1000, le=1000)] = 0
    weight: Annotated[int, msgspec.Meta(ge=0, le=10000)] = 1
    groups: OptionalModels = ""
    """Comma-separated group names; every group when empty."""


class TenantInput(msgspec.Struct, kw_only=True):
    """A tenant and its opening balance."""

    name: TenantName
    group: GroupName
    balance: Usd = "0"


class AdjustmentInput(msgspec.Struct, kw_only=True):
    """A manual change to a tenant's balance; the reason goes into the ledger."""

    amount: Annotated[str, msgspec.Meta(pattern=SIGNED_USD_PATTERN)]
    reason: Annotated[str, msgspec.Meta(min_length=3, max_length=500)]


class KeyInput(msgspec.Struct, kw_only=True):
    """A new API key."""

    name: Annotated[str, msgspec.Meta(max_length=_length(ApiKey.name))] = ""
    models: OptionalModels = ""
    """Comma-separated allow-list; every model when empty."""
    spend_limit: OptionalUsd = ""
    rpm_limit: Annotated[str, msgspec.Meta(pattern=r"^$|^[1-9][0-9]{0,6}$")] = ""
    tenant: Annotated[str, msgspec.Meta(max_length=_length(Tenant.name))] = ""
    """The owner, chosen by admins; a tenant user's own tenant otherwise."""


class KeyModelsInput(msgspec.Struct, kw_only=True):
    """A key's model allow-list."""

    models: OptionalModels = ""


class CodeBatchInput(msgspec.Struct, kw_only=True):
    """A batch of redemption codes."""

    batch: BatchName
    count: Annotated[int, msgspec.Meta(ge=1, le=1000)]
    amount: Usd
    expires_days: Annotated[str, msgspec.Meta(pattern=r"^$|^[1-9][0-9]{0,3}$")] = ""


class RedeemInput(msgspec.Struct, kw_only=True):
    """A code a tenant redeems."""

    code: Annotated[str, msgspec.Meta(min_length=8, max_length=128, pattern=r"^\S+$")]


class UserInput(msgspec.Struct, kw_only=True):
    """A console user: an admin, or a user of one tenant."""

    username: Username
    password: Password
    role: Literal["admin", "tenant"]
    tenant: Annotated[str, msgspec.Meta(max_length=_length(Tenant.name))] = ""


class PasswordInput(msgspec.Struct, kw_only=True):
    """A new password for a console user."""

    password: Password


class SettingsInput(msgspec.Struct, kw_only=True):
    """Options operators change in the console."""

    site_name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    default_group: GroupName
    signup_balance: Usd
    """USD credited to a tenant created without an opening balance."""
    log_retention_days: Annotated[int, msgspec.Meta(ge=1, le=3650)]
    session_hours: Annotated[int, msgspec.Meta(ge=1, le=720)]


def field_errors(struct: type[msgspec.Struct], values: dict[str, Any]) -> dict[str, str]:
    """Return msgspec's message for each field of ``values`` that ``struct`` refuses.

    Each field is converted on its own, so every wrong field is reported, not only the
    first; a missing required field is reported as an empty one.
    """
    errors: dict[str, str] = {}
    for field in msgspec.structs.fields(struct):
        if field.name not in values:
            if field.required:
                errors[field.name] = "Expected `str` of length >= 1"
            continue
        try:
            msgspec.convert(values[field.name], field.type, strict=False)
        except msgspec.ValidationError as exc:
            errors[field.name] = str(exc).split(" - at ", 1)[0]
    return errors
