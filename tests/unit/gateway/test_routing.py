from __future__ import annotations

import random
from collections import Counter
from decimal import Decimal

import pytest

from gateway.errors import GatewayError
from gateway.routing import ChannelHealth, order_channels, resolve
from gateway.snapshot import ChannelEntry, KeyEntry, Snapshot, TenantEntry
from shared.money import Price


def channel(
    id: int,
    priority: int = 0,
    weight: int = 1,
    models: tuple[str, ...] = ("m",),
    groups: frozenset[str] | None = None,
) -> ChannelEntry:
    return ChannelEntry(
        id=id,
        name=f"c{id}",
        kind="openai",
        base_url="http://127.0.0.1:1/v1",
        api_key="",
        models=frozenset(models),
        model_map={},
        priority=priority,
        weight=weight,
        groups=groups,
        relay_url=None,
        relay_secret=None,
        settings={},
    )


def test_order_channels_tries_lower_priority_numbers_first() -> None:
    ordered = order_channels([channel(1, 2), channel(2, 0), channel(3, 1)], ChannelHealth())

    assert [c.id for c in ordered] == [2, 3, 1]


def test_order_channels_splits_a_tier_by_weight() -> None:
    rng = random.Random(1234)
    channels = [channel(1, weight=3), channel(2, weight=1), channel(3, weight=0)]

    firsts = Counter(order_channels(channels, ChannelHealth(), rng)[0].id for _ in range(4000))

    assert firsts[3] == 0
    assert 2700 < firsts[1] < 3300 and 700 < firsts[2] < 1300


def test_order_channels_moves_cooled_channels_last() -> None:
    health = ChannelHealth()
    for _ in range(3):
        health.record_failure(1)

    assert [c.id for c in order_channels([channel(1), channel(2, 5)], health)] == [2, 1]
    health.record_success(1)
    assert [c.id for c in order_channels([channel(1), channel(2, 5)], health)] == [1, 2]


def _snapshot(channels: list[ChannelEntry], prices: dict[str, Price]) -> Snapshot:
    return Snapshot(keys={}, tenants={}, channels=channels, prices=prices)


KEY = KeyEntry(
    id=1,
    tenant_id=1,
    key_hash="h",
    status="active",
    expires_at=None,
    models=frozenset({"m", "n"}),
    rpm_limit=None,
    name="",
)
TENANT = TenantEntry(id=1, name="t", group="default", ratio=Decimal(1), status="active")
PRICE = Price(input=Decimal(1), output=Decimal(1))


def test_resolve_refuses_models_outside_the_keys_allow_list() -> None:
    snapshot = _snapshot([channel(1, models=("m", "o"))], {"m": PRICE, "o": PRICE})

    assert resolve(snapshot, KEY, TENANT, "m").channels[0].id == 1
    with pytest.raises(GatewayError) as refused:
        resolve(snapshot, KEY, TENANT, "o")
    assert (refused.value.status, refused.value.code) == (404, "model_not_found")


def test_resolve_refuses_unpriced_models() -> None:
    snapshot = _snapshot([channel(1, models=("m",))], {})

    with pytest.raises(GatewayError) as refused:
        resolve(snapshot, KEY, TENANT, "m")
    assert (refused.value.status, refused.value.code) == (400, "model_not_priced")


def test_resolve_and_listing_agree_on_group_restrictions() -> None:
    snapshot = _snapshot(
        [channel(1, models=("m",)), channel(2, models=("n",), groups=frozenset({"vip"}))],
        {"m": PRICE, "n": PRICE},
    )

    assert snapshot.usable_models(KEY, TENANT) == ["m"]
    with pytest.raises(GatewayError):
        resolve(snapshot, KEY, TENANT, "n")
