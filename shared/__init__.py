"""Tollgate's domain: models, money, settings and the services shared by gateway and console."""

from __future__ import annotations
