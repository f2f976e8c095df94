"""Platform settings: one explicit msgspec Struct, built from a TOML file and ``FULCRUM_*`` variables.

Nothing reads the environment at import time; ``create_app(settings)`` receives a built ``Settings``.
Precedence: defaults < TOML file (``FULCRUM_CONFIG`` or ``--config``) < environment variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import msgspec

__all__ = ["Deadlines", "PluginSettings", "Settings", "SlotConfig", "default_slots", "load_settings"]


class SlotConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One home-page slot of the inventory."""

    capacity: Annotated[int, msgspec.Meta(ge=1, le=50)]
    per_plugin: Annotated[int, msgspec.Meta(ge=1, le=50)] = 2
    # Popups only: at most this many shows per customer within ``frequency_window_hours``.
    frequency_cap: Annotated[int, msgspec.Meta(ge=1)] | None = None
    frequency_window_hours: Annotated[int, msgspec.Meta(ge=1)] = 24


def default_slots() -> dict[str, SlotConfig]:
    """The inventory in DESIGN.md: banner 5, kingkong 10, popup 1 (once a day), notice 3."""
    return {
        "home.banner/v1": SlotConfig(capacity=5, per_plugin=2),
        "home.kingkong/v1": SlotConfig(capacity=10, per_plugin=3),
        "home.popup/v1": SlotConfig(capacity=1, per_plugin=1, frequency_cap=1, frequency_window_hours=24),
        "home.notice/v1": SlotConfig(capacity=3, per_plugin=1),
    }


class Deadlines(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Per-hook deadlines in milliseconds."""

    home_slot_offers: Annotated[int, msgspec.Meta(ge=1)] = 150
    search: Annotated[int, msgspec.Meta(ge=1)] = 300
    feed_items: Annotated[int, msgspec.Meta(ge=1)] = 300
    execute_transaction: Annotated[int, msgspec.Meta(ge=1)] = 5000


class PluginSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Host-level settings for one installed plugin (until the registry and branch files decide)."""

    enabled: bool = True
    # The scopes granted; ``None`` grants what the manifest requires and asks for optionally.
    scopes: frozenset[str] | None = None
    settings: dict[str, str] = {}


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything the host needs to run; see each field's comment."""

    # SQLAlchemy URL; None → a SQLite file ``fulcrum.db`` under ``state_dir``.
    database_url: str | None = None
    # Where the host keeps local files (SQLite database, development signing keys).
    state_dir: str = ".fulcrum"
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 8000
    # OAuth / JWT: the issuer URL and the audience of customer-facing access tokens.
    issuer: str = "http://127.0.0.1:8000"
    audience: str = "fulcrum-app"
    access_token_ttl_seconds: Annotated[int, msgspec.Meta(ge=30, le=300)] = 300
    # A secret for pairwise customer ids of partner plugins; None → generated into state_dir.
    pairwise_secret: str | None = None
    # Development mode: installed plugins unknown to the registry run (with a warning).
    dev_mode: bool = False
    slots: dict[str, SlotConfig] = msgspec.field(default_factory=default_slots)
    deadlines: Deadlines = Deadlines()
    feed_columns: tuple[str, ...] = ("wealth", "education", "retirement", "life")
    plugins: dict[str, PluginSettings] = {}
    # Plugins to skip entirely even when installed (ids).
    disabled_plugins: frozenset[str] = frozenset()
    # Largest single transaction the host accepts, in fen (platform-wide limit).
    max_transaction_fen: Annotated[int, msgspec.Meta(ge=1)] = 500_000_000
    # Redis URL for shared rate-limit and breaker state; None → per-worker memory.
    redis_url: str | None = None
    log_level: str = "INFO"

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in ``state_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{Path(self.state_dir).resolve() / 'fulcrum.db'}"


# Environment variables that map onto top-level scalar fields.
_ENV_FIELDS = {
    "FULCRUM_DATABASE_URL": "database_url",
    "FULCRUM_STATE_DIR": "state_dir",
    "FULCRUM_HOST": "host",
    "FULCRUM_PORT": "port",
    "FULCRUM_ISSUER": "issuer",
    "FULCRUM_AUDIENCE": "audience",
    "FULCRUM_PAIRWISE_SECRET": "pairwise_secret",
    "FULCRUM_DEV_MODE": "dev_mode",
    "FULCRUM_REDIS_URL": "redis_url",
    "FULCRUM_LOG_LEVEL": "log_level",
}


def load_settings(
    *, config_file: str | Path | None = None, environ: Mapping[str, str] | None = None, **overrides: object
) -> Settings:
    """Build ``Settings`` from defaults, a TOML file, ``FULCRUM_*`` variables and explicit overrides.

    Raises ``msgspec.ValidationError`` naming the bad key (e.g. ``Expected `int` - at `$.port```).
    """
    env = os.environ if environ is None else environ
    raw: dict[str, object] = {}
    path = config_file or env.get("FULCRUM_CONFIG")
    if path:
        raw.update(msgspec.toml.decode(Path(path).read_bytes()))
    for var, field in _ENV_FIELDS.items():
        if var in env and env[var] != "":
            raw[field] = env[var]
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return msgspec.convert(raw, Settings, strict=False)
