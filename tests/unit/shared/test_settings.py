from __future__ import annotations

import msgspec
import pytest

from shared.settings import Settings


def test_settings_read_from_environment() -> None:
    settings = Settings.from_env(
        {"TOLLGATE_GATEWAY_PORT": "9001", "DATABASE_URL": "postgresql://db/x", "OTHER": "1"}
    )

    assert settings.gateway.port == 9001
    assert settings.database.url == "postgresql://db/x"
    assert settings.billing.hold_ttl == 900


def test_settings_prefer_tollgate_database_url() -> None:
    settings = Settings.from_env(
        {"TOLLGATE_DATABASE_URL": "postgresql://a/a", "DATABASE_URL": "postgresql://b/b"}
    )

    assert settings.database.url == "postgresql://a/a"


def test_settings_round_trip_through_environment() -> None:
    settings = Settings.from_env(
        {"TOLLGATE_GATEWAY_RELAY_CLIENT": "httpx", "TOLLGATE_GATEWAY_WORKERS": "3"}
    )

    assert Settings.from_env(settings.to_env()) == settings


@pytest.mark.parametrize(
    ("name", "value", "path"),
    [
        ("TOLLGATE_GATEWAY_PORT", "eighty", "$.gateway.port"),
        ("TOLLGATE_GATEWAY_RELAY_CLIENT", "curl", "$.gateway.relay_client"),
        ("TOLLGATE_BILLING_HOLD_TTL", "1.5", "$.billing.hold_ttl"),
    ],
)
def test_settings_reject_bad_values_with_their_path(name: str, value: str, path: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=rf"at `{path.replace('$', '[$]')}`"):
        Settings.from_env({name: value})
