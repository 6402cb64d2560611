"""Alembic environment and revisions: the only way Tollgate's schema changes."""
