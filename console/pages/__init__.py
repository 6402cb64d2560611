"""The console's pages: sign-in, the admin pages and the tenant pages."""

from __future__ import annotations
