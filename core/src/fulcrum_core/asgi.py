"""ASGI entry for servers that import an app factory (``uvicorn --factory fulcrum_core.asgi:app_factory``)."""

from __future__ import annotations

from litestar import Litestar

from fulcrum_core.app import create_app
from fulcrum_core.settings import load_settings

__all__ = ["app_factory"]


def app_factory() -> Litestar:
    """Build the app from ``FULCRUM_*`` variables and ``FULCRUM_CONFIG``; each worker calls it once."""
    return create_app(load_settings())
