"""Reflex configuration of the console.

Reflex runs with this folder as its working directory: it must not be a Python package, or
granian would import the app under a wrong name. See :mod:`console.server`.
"""

from __future__ import annotations

import reflex as rx

config = rx.Config(
    app_name="console",
    app_module_import="console.app",
    telemetry_enabled=False,
    show_built_with_reflex=False,
    backend_host="127.0.0.1",
    plugins=[rx.plugins.RadixThemesPlugin(theme=rx.theme(accent_color="indigo", radius="medium"))],
    disable_plugins=[rx.plugins.SitemapPlugin],
    # Client states stay in the one worker's memory: a new key or code batch, shown once,
    # is never written to disk.
    state_manager_mode="memory",
)
