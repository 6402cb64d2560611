"""Services shared by the admin CLI, the admin API and the console."""

from __future__ import annotations
