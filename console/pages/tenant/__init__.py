"""Pages for tenant users; every query is pinned to the signed-in user's tenant."""

from __future__ import annotations
