"""The Tollgate console: a Reflex app for operators and tenants, on the shared services."""

from __future__ import annotations
