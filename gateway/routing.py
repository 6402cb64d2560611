"""Choosing channels: resolve a model for a key, then order its channels for this request.

Channels are tried lowest priority number first; inside one priority, a weighted random
order (weighted sampling without replacement), so traffic splits by weight and a failed
channel's share falls to the others. Channels that keep failing are cooled down for a
while in this worker's memory and tried only when nothing healthier is left.
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Final

from gateway.errors import GatewayError

if TYPE_CHECKING:
    from gateway.snapshot import ChannelEntry, KeyEntry, Snapshot, TenantEntry
    from shared.money import Price

__all__ = ("ChannelHealth", "Route", "order_channels", "resolve")

_FAILURES_TO_COOL: Final = 3
_COOL_DOWN: Final = 30.0


class Route:
    """The outcome of resolution: the price and the candidate channels of a model."""

    __slots__ = ("channels", "model", "price")

    def __init__(self, model: str, price: Price, channels: list[ChannelEntry]) -> None:
        self.model = model
        self.price = price
        self.channels = channels


def resolve(snapshot: Snapshot, key: KeyEntry, tenant: TenantEntry, model: str) -> Route:
    """Return the route for ``model`` as ``key`` may use it.

    Raises:
        GatewayError: 404 ``model_not_found`` when the key may not use the model or no
            channel serves it to the tenant's group (the same rule as the model list), 400
            ``model_not_priced`` when it is served but has no price, since nothing is
            served free by accident.
    """
    channels = snapshot.channels_for(model, tenant.group) if key.allows(model) else []
    if not channels:
        msg = f"The model `{model}` does not exist or you do not have access to it."
        raise GatewayError(404, "model_not_found", msg, param="model")
    price = snapshot.prices.get(model)
    if price is None:
        msg = f"The model `{model}` has no price set; ask the operator to set one."
        raise GatewayError(400, "model_not_priced", msg, param="model")
    return Route(model, price, channels)


class ChannelHealth:
    """Per-worker memory of recent channel failures, for cooling channels down."""

    def __init__(self) -> None:
        """Start with every channel healthy."""
        self._failures: dict[int, int] = {}
        self._cooled_until: dict[int, float] = {}

    def record_success(self, channel_id: int) -> None:
        """Forget the channel's failures."""
        self._failures.pop(channel_id, None)
        self._cooled_until.pop(channel_id, None)

    def record_failure(self, channel_id: int) -> None:
        """Count a failure; the third in a row cools the channel down."""
        count = self._failures.get(channel_id, 0) + 1
        self._failures[channel_id] = count
        if count >= _FAILURES_TO_COOL:
            self._cooled_until[channel_id] = time.monotonic() + _COOL_DOWN

    def is_cool(self, channel_id: int) -> bool:
        """Return True while the channel is cooling down."""
        until = self._cooled_until.get(channel_id)
        return until is not None and until > time.monotonic()


def order_channels(
    channels: list[ChannelEntry], health: ChannelHealth, rng: random.Random | None = None
) -> list[ChannelEntry]:
    """Return ``channels`` in the order to try them for one request."""
    draw = (rng or random).random
    tiers: dict[int, list[ChannelEntry]] = {}
    for channel in channels:
        tiers.setdefault(channel.priority, []).append(channel)
    ordered: list[ChannelEntry] = []
    for priority in sorted(tiers):
        tier = tiers[priority]
        # Weighted order without replacement: sort by u^(1/w) descending (Efraimidis-Spirakis).
        keyed = [
            (draw() ** (1.0 / c.weight) if c.weight > 0 else -1.0 + draw() * 1e-9, c) for c in tier
        ]
        keyed.sort(key=lambda pair: pair[0], reverse=True)
        ordered.extend(c for _, c in keyed)
    healthy = [c for c in ordered if not health.is_cool(c.id)]
    cooled = [c for c in ordered if health.is_cool(c.id)]
    return healthy + cooled
