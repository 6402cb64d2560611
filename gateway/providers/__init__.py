"""Upstream adaptors, one module per upstream protocol."""

from __future__ import annotations
