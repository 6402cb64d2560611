"""Tollgate gateway: the client-facing request path."""

from __future__ import annotations
