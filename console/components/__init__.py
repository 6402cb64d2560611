"""Components specific to the Tollgate console (the toolkit holds the generic ones)."""

from __future__ import annotations
