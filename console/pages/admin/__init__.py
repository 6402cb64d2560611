"""Pages for operators (admins)."""

from __future__ import annotations
