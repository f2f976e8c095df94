"""The app factory uvicorn imports (and re-imports on every reload) for ``fulcrum dev``.

``fulcrum dev`` passes the plugin's location through ``FULCRUM_DEV_SOURCE`` and
``FULCRUM_DEV_PACKAGE`` and the settings through the usual ``FULCRUM_*`` variables.
"""

from __future__ import annotations

import importlib
import os
import sys

from litestar import Litestar

from fulcrum_core.app import build_runtime, create_app
from fulcrum_core.devhost.echo import EchoStats
from fulcrum_core.plugins import import_failure
from fulcrum_core.settings import load_settings

__all__ = ["PACKAGE_ENV", "SOURCE_ENV", "dev_app_factory"]

SOURCE_ENV = "FULCRUM_DEV_SOURCE"
PACKAGE_ENV = "FULCRUM_DEV_PACKAGE"


def dev_app_factory() -> Litestar:
    """The host with only the plugin under development loaded, its calls echoed to the terminal."""
    source, package = os.environ[SOURCE_ENV], os.environ[PACKAGE_ENV]
    if source not in sys.path:
        sys.path.insert(0, source)  # the working copy wins over any installed copy of the plugin
    plugins: list[object] = []
    failure = "not registered"
    code_dir: str | None = None
    try:
        module = importlib.import_module(package)
        plugins.append(module)
        code_dir = os.path.dirname(module.__file__ or "") or None
    except (Exception, SystemExit) as exc:  # the host keeps serving: fix the code, save, and it reloads
        failure = f"{package}: {import_failure(exc)}; fix: correct the code and save (the host reloads)"
    settings = load_settings(dev_mode=True)
    runtime = build_runtime(settings, extra_plugins=plugins, load_entry_points=False)
    watched = next(iter(runtime.plugins.loaded), None)
    if watched is None:
        reasons = "; ".join(f"{k}: {v}" for k, v in runtime.plugins.quarantined.items()) or failure
        sys.stdout.write(f"[fulcrum dev] the plugin did not load: {reasons}\n")
        sys.stdout.flush()
    echo = EchoStats(watched or package, code_dir=code_dir)
    runtime.dispatcher.stats = echo
    runtime.dispatcher.on_plugin_error = echo.show_error  # tracebacks here only: production logs stay
    return create_app(settings, runtime=runtime)
