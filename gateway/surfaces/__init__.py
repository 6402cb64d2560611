"""Client-facing API surfaces, one module per protocol."""

from __future__ import annotations
