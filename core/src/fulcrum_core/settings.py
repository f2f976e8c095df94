"""Platform settings: one explicit msgspec Struct, built from a TOML file and ``FULCRUM_*`` variables.

Nothing reads the environment at import time; ``create_app(settings)`` receives a built ``Settings``.
Precedence: defaults < TOML file (``FULCRUM_CONFIG`` or ``--config``) < environment variables.
"""

from __future__ import annotations

import codecs
import difflib
import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import msgspec
from fulcrum_sdk._in_words import (
    bound_problem,
    did_you_mean,
    echoed,
    pattern_problem,
    split_message,
    struct_at,
    value_at,
    worded,
)
from fulcrum_sdk.display import find_display_problem
from fulcrum_sdk.models import Action, LocalizedText, SlotOffer
from fulcrum_sdk.storage import QuotaLimit, StorageQuota

from fulcrum_core.dispatch.breaker import BreakerConfig

__all__ = [
    "DEFAULT_ISSUER",
    "TIMED_AS",
    "Deadlines",
    "OAuthIdp",
    "PluginSettings",
    "RateLimit",
    "Settings",
    "SettingsError",
    "SlotConfig",
    "SlowCalls",
    "default_home_content",
    "default_slots",
    "load_settings",
    "misspelt_variables",
]


class SlotConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One home-page slot of the inventory."""

    capacity: Annotated[int, msgspec.Meta(ge=1, le=50)]
    per_plugin: Annotated[int, msgspec.Meta(ge=1, le=50)] = 2
    # Popups only: at most this many shows per customer within ``frequency_window_hours``.
    frequency_cap: Annotated[int, msgspec.Meta(ge=1)] | None = None
    frequency_window_hours: Annotated[int, msgspec.Meta(ge=1)] = 24
    # False takes the slot off the home page on purpose (``Settings.slots`` leaves it out).
    enabled: bool = True


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
    page: Annotated[int, msgspec.Meta(ge=1)] = 300
    execute_transaction: Annotated[int, msgspec.Meta(ge=1)] = 5000


TIMED_AS: dict[str, str] = {"home_slot_campaigns": "home_slot_offers"}
"""Hooks without a deadline of their own, and the hook whose deadline and slow-call threshold they take:
campaigns are home-page content, fetched under the home page's deadline."""


MIN_LOOP_STALL_MS = 50
"""The shortest ``loop_stall_ms`` (bar 0, off): shorter, a busy loop's ordinary callbacks count as stalls."""

DEFAULT_ISSUER = "http://127.0.0.1:8000"
"""The OAuth issuer when none is set: the demo's and ``serve``'s default address."""


SLOW_CALL_FRACTION = 0.8
"""A hook's default slow-call threshold, as a fraction of its deadline (120 ms of home's 150 ms).

The breaker trips when half its window is slow, that is when a plugin's typical call takes over 80 % of
its deadline: it then has under a fifth of its time left for jitter, times out often, and holds the page
nearly as long as a hung plugin. A plugin answering in half its deadline is left alone."""


class SlowCalls(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Per-hook slow-call thresholds in milliseconds: a call taking longer counts as slow in the hook's
    breaker (as a call cut off at the deadline does). Unset → ``SLOW_CALL_FRACTION`` of the deadline."""

    home_slot_offers: Annotated[int, msgspec.Meta(ge=1)] | None = None
    search: Annotated[int, msgspec.Meta(ge=1)] | None = None
    feed_items: Annotated[int, msgspec.Meta(ge=1)] | None = None
    page: Annotated[int, msgspec.Meta(ge=1)] | None = None
    execute_transaction: Annotated[int, msgspec.Meta(ge=1)] | None = None


class RateLimit(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Per-client request limit on ``/v1``: at most ``requests`` per fixed window of ``window_seconds``."""

    enabled: bool = True
    requests: Annotated[int, msgspec.Meta(ge=1)] = 600
    window_seconds: Annotated[int, msgspec.Meta(ge=1, le=3600)] = 60


def default_home_content() -> tuple[SlotOffer, ...]:
    """Platform content shown in a home slot that is left empty because a plugin was left out."""
    return (
        SlotOffer(
            slot="home.notice/v1", key="platform-welcome", priority=0,
            title=LocalizedText(zh_CN="更多服务请前往“全部功能”", en="More services under All functions"),
            action=Action(uri="fulcrum://open/all-functions"),
        ),
    )


_LOOPBACK_JWKS = worded(
    r"^(/|\.{0,2}[^:]*$|https?://(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?/)",
    "a JWK Set file's path, or an http(s) URL on the loopback interface (127.0.0.0/8, localhost or [::1]), "
    "such as http://127.0.0.1:8080/jwks.json",
)


def is_loopback_url(url: str) -> bool:
    """True when ``url``'s host is ``localhost`` or a loopback address (127.0.0.0/8, [::1])."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class OAuthIdp(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The bank's identity provider, whose signed assertions (RFC 7523) say which customer signed in.

    Off until ``issuer`` is set. Its public keys come from ``jwks`` (a JWK Set file, or a URL on the
    loopback interface, such as a sidecar of the IdP) and/or ``public_keys`` (PEM texts).
    """

    # The ``iss`` the IdP puts in its assertions; None: no IdP, only the development login (if on).
    issuer: str | None = None
    # Accepted ``aud`` values; empty → the token endpoint URL and the issuer (``<issuer>/oauth/token``).
    audiences: tuple[str, ...] = ()
    # A JWK Set: a file path, or an http(s) URL on 127.0.0.0/8, localhost or [::1] (read again every
    # ``jwks_cache_seconds`` and when an assertion names a key id it lacks).
    jwks: Annotated[str, msgspec.Meta(pattern=_LOOPBACK_JWKS)] | None = None
    jwks_cache_seconds: Annotated[int, msgspec.Meta(ge=1, le=86_400)] = 300
    # Public keys as PEM texts (RSA, EC or Ed25519), beside or instead of ``jwks``.
    public_keys: tuple[str, ...] = ()
    # The longest an assertion may live (``exp`` no further ahead than this); its ``jti`` is refused
    # a second time, across workers, until it expires.
    max_assertion_seconds: Annotated[int, msgspec.Meta(ge=10, le=600)] = 300
    # The first-party clients that may exchange an assertion for tokens at ``/oauth/token``.
    clients: tuple[str, ...] = ("fulcrum-app",)
    # How long the consent page's login, set from an assertion by ``POST /oauth/login``, lasts.
    login_seconds: Annotated[int, msgspec.Meta(ge=30, le=3600)] = 600

    def __post_init__(self) -> None:
        if self.issuer is not None and self.jwks is None and not self.public_keys:
            raise ValueError("oauth_idp: an issuer needs its keys: set jwks or public_keys")


class PluginQuota(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One plugin's storage quota as ``[plugins.<id>.storage_quota]`` sets it: a measure left out keeps
    the host's ``storage_quota`` value, so tightening one never loosens another."""

    documents: QuotaLimit | None = None
    document_bytes: QuotaLimit | None = None
    counters: QuotaLimit | None = None


class PluginSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Host-level settings for one installed plugin (until the registry and branch files decide)."""

    enabled: bool = True
    # The scopes granted; ``None`` grants what the manifest requires and asks for optionally.
    scopes: frozenset[str] | None = None
    settings: dict[str, str] = {}
    # This plugin's storage quota: the measures named here in place of the host's ``storage_quota``.
    storage_quota: PluginQuota | None = None


_HOST_PATTERN = worded(
    r"^[^\s\x00-\x1f\x7f]+(?!\n)$",
    "a host name or address with no spaces or control characters, such as 127.0.0.1 or 0.0.0.0",
)
_BASE_URL_PATTERN = worded(
    r"^https?://[^\s/?#]+[^\s?#]*(?!\n)$",
    "an absolute http(s) URL with no spaces, query or fragment, such as https://developer.bank.example/problems/",
)
_LOG_LEVEL_PATTERN = worded(
    r"(?i)^(critical|fatal|error|warn|warning|info|debug|notset)(?!\n)$",
    "a log level: critical, fatal, error, warn, warning, info, debug or notset, in any case",
)


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything the host needs to run; see each field's comment."""

    def quota_of(self, plugin_id: str) -> StorageQuota:
        """The storage quota of ``plugin_id``: the host's, with the measures its ``[plugins.<id>]`` sets."""
        own = self.plugins.get(plugin_id)
        if own is None or own.storage_quota is None:
            return self.storage_quota
        named = {k: v for k, v in msgspec.structs.asdict(own.storage_quota).items() if v is not None}
        return msgspec.structs.replace(self.storage_quota, **named)

    # SQLAlchemy URL; None → a SQLite file ``fulcrum.db`` under ``state_dir``.
    database_url: str | None = None
    # Where the host keeps local files (SQLite database, development signing keys).
    state_dir: str = ".fulcrum"
    # The interface to bind: a name or address, never empty (an empty host binds every interface).
    host: Annotated[str, msgspec.Meta(pattern=_HOST_PATTERN, max_length=253)] = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 8000
    # The server's HTTP parser and event loop. ``auto`` takes httptools and uvloop (C, installed with
    # the host) when they can be imported, else h11 and asyncio (pure Python: a worker then serves
    # about a third fewer home pages a second). Name one to rule the other out.
    http_protocol: Literal["auto", "httptools", "h11"] = "auto"
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"
    # How long a worker told to stop by SIGTERM serves on with ``/readyz`` answering 503 before it stops
    # listening, so the load balancer takes it out first: its probe period times the failures it needs,
    # plus a margin. 0 stops listening at once. SIGINT (Ctrl-C) and a second SIGTERM do not wait.
    shutdown_delay_seconds: Annotated[float, msgspec.Meta(ge=0, le=120)] = 0.0
    # OAuth / JWT: the issuer URL and the audience of customer-facing access tokens.
    issuer: str = DEFAULT_ISSUER
    audience: str = "fulcrum-app"
    # Where the error catalogue is published: every problem's ``type`` is this URL plus its code. None
    # → ``/problems/`` under ``issuer``, which this host serves; set it when the catalogue is published
    # elsewhere (a developer portal). An absolute http(s) URL; a missing final ``/`` is added.
    problem_base_url: (
        Annotated[str, msgspec.Meta(pattern=_BASE_URL_PATTERN)] | None
    ) = None
    access_token_ttl_seconds: Annotated[int, msgspec.Meta(ge=30, le=300)] = 300
    # Refresh-token rotation grace period: within this many seconds after a refresh token was spent,
    # its own client may present it again (two screens refreshing together, a retry whose answer a
    # timeout lost) and gets another token of the same family, at most twice per token; later, or
    # more often, it is a reuse and revokes the family. 0: strict rotation (any second use revokes).
    refresh_reuse_grace_seconds: Annotated[int, msgspec.Meta(ge=0, le=60)] = 10
    # The OAuth server's development login (choose a demo customer on the consent page); a bank
    # signs its customers in through its identity provider (``oauth_idp``). Also on when ``dev_mode`` is.
    oauth_dev_login: bool = False
    # The bank's identity provider (``[oauth_idp]``, ``FULCRUM_OAUTH_IDP__<KEY>``): customers signed in
    # to the app get tokens by its assertion (RFC 7523) and sign in to the consent page with one.
    oauth_idp: OAuthIdp = OAuthIdp()
    # Redirect URIs of the mobile app's public client ``fulcrum-app`` (exact strings).
    oauth_app_redirect_uris: tuple[str, ...] = ("fulcrum-app://oauth/callback", "http://127.0.0.1:8765/callback")
    # A secret for pairwise customer ids of partner plugins; None → generated into state_dir.
    pairwise_secret: str | None = None
    # Development mode: installed plugins unknown to the registry run (with a warning).
    dev_mode: bool = False
    # The home page's slot inventory. The settings file's ``[slots."<id>"]`` tables tune the built-in one
    # key by key (``load_settings``); no variable sets a slot. Given here in code, it is the whole
    # inventory: a slot left out is not served.
    slots: dict[str, SlotConfig] = msgspec.field(default_factory=default_slots)
    deadlines: Deadlines = Deadlines()
    feed_columns: tuple[str, ...] = ("wealth", "education", "retirement", "life")
    plugins: dict[str, PluginSettings] = {}
    # Plugins to skip entirely even when installed (ids).
    disabled_plugins: frozenset[str] = frozenset()
    # Largest single transaction the host accepts, in fen (platform-wide limit); at most 2**63 - 1,
    # what the journal's amount column holds, so every amount past the check can be journaled.
    max_transaction_fen: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)] = 500_000_000
    # How long after its first request a transaction the plugin never saw (a 503
    # ``transaction.plugin_unavailable``) may still be run by a retry with the same Idempotency-Key;
    # a later retry gets 422 ``idempotency.expired`` and the transaction ends as failed. At most 7 days.
    transaction_retry_window_seconds: Annotated[int, msgspec.Meta(ge=1, le=7 * 86_400)] = 86_400
    # Redis URL for shared rate-limit and breaker state; None → per-worker memory.
    redis_url: str | None = None
    # Every Redis key starts with this: give each environment sharing one Redis its own.
    redis_prefix: str = "fulcrum:"
    # With Redis: how often each worker reads the breakers other workers opened (a breaker that opens
    # in one worker opens, within about this long, in every worker). Not shared in dev_mode.
    breaker_share_seconds: Annotated[float, msgspec.Meta(gt=0, le=60)] = 1.0
    # The log level of the host and its server, text or JSON (a level name, in any case).
    log_level: Annotated[str, msgspec.Meta(pattern=_LOG_LEVEL_PATTERN)] = "INFO"
    # Resilience: every plugin × hook gets a circuit breaker and a bulkhead of at most this many calls
    # in flight; /v1/home answers within its budget. A call over its hook's ``slow_calls`` threshold
    # (ms, at most the deadline; default 80 % of it) or cut off at the deadline counts as slow, and
    # ``breaker.slow_call_rate_threshold`` % slow calls in the window open the breaker.
    breaker: BreakerConfig = BreakerConfig()
    slow_calls: SlowCalls = SlowCalls()
    bulkhead_size: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 32
    home_budget_ms: Annotated[int, msgspec.Meta(ge=1)] = 400
    # A worker whose event loop is held this long (every request waits) logs whose code held it, counts
    # it in /metrics, and opens the breakers of a plugin whose code held it outside its calls past
    # ``breaker.open_on_loop_hold`` deadlines at a stretch (``dispatch/stalls.py``). 0 turns the watch
    # off; else at least 50.
    loop_stall_ms: Annotated[int, msgspec.Meta(ge=0, le=60_000)] = 100
    # How old a plugin storage read in a display hook (home, search, feeds) may be: each worker caches
    # reads this long; transactions always read the database. 0 turns the cache off.
    storage_cache_ms: Annotated[int, msgspec.Meta(ge=0, le=60_000)] = 1000
    # The most each plugin may keep in its storage: documents, their bytes (key and JSON) and counters.
    # A write past it raises QuotaExceeded and changes nothing, so one plugin cannot fill the database
    # the journal lives in; ``[plugins.<id>.storage_quota]`` sets one plugin's. `fulcrum db storage`
    # shows what each holds.
    storage_quota: StorageQuota = StorageQuota()
    # How long each worker may reuse a customer's live consents read from the database (0: read on
    # every partner request). A write in a worker applies there at once; other workers within this.
    consent_cache_ms: Annotated[int, msgspec.Meta(ge=0, le=60_000)] = 1000
    # On SQLite, run plugin storage and consent reads on the event loop instead of in worker threads:
    # a local read in WAL mode takes tens of µs and waits for no writer, while handing it to a thread
    # costs several hundred µs of CPU under load. Writes always use threads; PostgreSQL ignores it.
    sqlite_reads_on_loop: bool = True
    # How long each worker reuses a plugin's home_slot_campaigns result (the audience-level offers
    # every customer's page filters): the most a campaign can be out of date. 0: call on every page.
    campaign_ttl_ms: Annotated[int, msgspec.Meta(ge=0, le=3_600_000)] = 60_000
    # How long a request waits, in all, for what it reads about the customer before its plugins run:
    # the profile and records of a data provider that does I/O (``blocking = True``, read in worker
    # threads; a late record is unavailable) and the live consents on a cache miss (late: partners
    # get no customer data). On /v1/home the page's budget ends it sooner if need be.
    data_budget_ms: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 100
    # A statement of the serving host that runs longer than this is cancelled (PostgreSQL: by the
    # server; SQLite: by a progress handler), so a runaway query, or one stuck behind a lock, frees its
    # connection and thread; 0 turns it off. Migrations (`fulcrum db upgrade`) run without it.
    db_statement_timeout_ms: Annotated[int, msgspec.Meta(ge=0, le=3_600_000)] = 30_000
    # Shown in an empty home slot when a plugin was left out of the response.
    home_defaults: tuple[SlotOffer, ...] = msgspec.field(default_factory=default_home_content)
    rate_limit: RateLimit = RateLimit()
    # Structured JSON log lines (with the request id) on stderr; off → the logging setup is untouched.
    log_json: bool = False
    # A directory the workers of one host share for /metrics: each writes its counts there (every
    # ``metrics_share_seconds`` and at each scrape), and a scrape of any worker reads them all. None →
    # each worker reports its own; ``fulcrum serve --workers N`` makes a fresh one for its workers.
    metrics_dir: str | None = None
    metrics_share_seconds: Annotated[float, msgspec.Meta(gt=0, le=60)] = 1.0
    # Registry: where submitted wheels are stored (None → ``state_dir/artifacts``), and how often each
    # worker polls the registry's policy version (suspensions take effect within about this long).
    registry_artifacts_dir: str | None = None
    registry_poll_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 2.0
    # Branch configuration (hq.toml + <code>.toml), relative to the working directory; a missing
    # directory means no branch layer: every installed, approved plugin is on for every customer.
    branches_dir: str = "branches"
    # How often each worker re-reads the branch directory (edits apply within about this long).
    branches_poll_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 2.0

    def __post_init__(self) -> None:
        dev_login = self.oauth_dev_login or self.dev_mode
        if self.oauth_idp.issuer is not None and dev_login and not is_loopback_url(self.issuer):
            # Beside the bank's login the development login would let anyone consent as any customer.
            raise ValueError(
                "oauth_dev_login: the development login (also on with dev_mode) lets anyone act as any "
                "customer on the consent page; with an identity provider configured it is refused unless "
                f"the issuer is on the loopback interface, and the issuer is {self.issuer}"
            )
        if any(not slot.enabled for slot in self.slots.values()):
            shown = {slot_id: slot for slot_id, slot in self.slots.items() if slot.enabled}
            msgspec.structs.force_setattr(self, "slots", shown)
        if 0 < self.loop_stall_ms < MIN_LOOP_STALL_MS:
            raise ValueError(
                f"loop_stall_ms: {self.loop_stall_ms} would take ordinary callbacks for stalls; "
                f"0 (off) or at least {MIN_LOOP_STALL_MS}"
            )
        if self.breaker.slow_call_duration_s != BreakerConfig().slow_call_duration_s:
            # Every hook's breaker takes its own threshold: this one would be ignored without a word.
            raise ValueError(
                "breaker.slow_call_duration_s: set per hook in [slow_calls] (milliseconds), not here"
            )
        for hook in SlowCalls.__struct_fields__:
            slow: int | None = getattr(self.slow_calls, hook)
            deadline: int = getattr(self.deadlines, hook)
            if slow is not None and slow > deadline:
                raise ValueError(
                    f"slow_calls.{hook}: {slow} ms is over the hook's deadline (deadlines.{hook} = "
                    f"{deadline} ms); a slow-call threshold must be at most the deadline"
                )

    def slow_call_ms(self, hook: str) -> float:
        """How long a call of ``hook`` may take, in milliseconds, before its breaker counts it as slow."""
        hook = TIMED_AS.get(hook, hook)
        slow: int | None = getattr(self.slow_calls, hook)
        deadline: int = getattr(self.deadlines, hook)
        return float(slow) if slow is not None else deadline * SLOW_CALL_FRACTION

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in ``state_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{Path(self.state_dir).resolve() / 'fulcrum.db'}"


def _one_value(kind: msgspec.inspect.Type) -> bool:
    """Whether a setting of type ``kind`` is one value a variable can spell (a string, number, flag or
    one of a few words, or ``None``), not a list or a table."""
    if isinstance(kind, msgspec.inspect.UnionType):
        return all(isinstance(t, msgspec.inspect.NoneType) or _one_value(t) for t in kind.types)
    one = (msgspec.inspect.StrType, msgspec.inspect.IntType, msgspec.inspect.FloatType,
           msgspec.inspect.BoolType, msgspec.inspect.LiteralType)
    return isinstance(kind, one)


_FIELDS: tuple[msgspec.inspect.Field, ...] = msgspec.inspect.type_info(Settings).fields  # type: ignore[attr-defined]

# Environment variables that map onto top-level fields of one value: every one has its variable,
# ``FULCRUM_<FIELD>`` (``FULCRUM_HOME_BUDGET_MS`` sets ``home_budget_ms``), so none is ignored unsaid.
_ENV_FIELDS: dict[str, str] = {f"FULCRUM_{f.name.upper()}": f.name for f in _FIELDS if _one_value(f.type)}


# Tables of scalar settings whose keys a variable sets one at a time: FULCRUM_<TABLE>__<KEY>, e.g.
# FULCRUM_BREAKER__SLIDING_WINDOW_TYPE=time_based or FULCRUM_DEADLINES__HOME_SLOT_OFFERS=200. A
# variable overrides that key of the file's table and leaves the table's other keys as the file set them.
_ENV_TABLES: dict[str, type[msgspec.Struct]] = {
    "deadlines": Deadlines, "slow_calls": SlowCalls, "breaker": BreakerConfig, "rate_limit": RateLimit,
    "storage_quota": StorageQuota, "oauth_idp": OAuthIdp,
}


def _table_variables(env: Mapping[str, str]) -> dict[str, dict[str, tuple[str, str]]]:
    """Table -> key -> (variable, value) for the non-empty ``FULCRUM_<TABLE>__<KEY>`` variables."""
    found: dict[str, dict[str, tuple[str, str]]] = {}
    for var, value in env.items():
        if value == "" or not var.startswith("FULCRUM_") or "__" not in var:
            continue
        table, _, key = var.removeprefix("FULCRUM_").partition("__")
        if table.lower() in _ENV_TABLES and key:
            found.setdefault(table.lower(), {})[key.lower()] = (var, value)
    return found


def _table_variable_names() -> list[str]:
    """Every ``FULCRUM_<TABLE>__<KEY>`` variable that names a setting."""
    return [
        f"FULCRUM_{table.upper()}__{field.name.upper()}"
        for table, struct in _ENV_TABLES.items()
        for field in msgspec.structs.fields(struct)
    ]


# Tables of tables, keyed by ids a variable's name cannot spell (``home.banner/v1``): set only in the
# settings file. A ``FULCRUM_<TABLE>`` or ``FULCRUM_<TABLE>__*`` variable for one is refused, naming the
# file's table to use instead, where it used to be ignored without a word.
_FILE_ONLY_TABLES: dict[str, str] = {
    "slots": 'a table [slots."<id>"] (e.g. [slots."home.banner/v1"] with capacity = 3)',
    "plugins": "a table [plugins.<id>] (e.g. [plugins.weather.storage_quota] with documents = 1000)",
}


# Top-level lists (``disabled_plugins``, ``feed_columns`` …): set only in the settings file. A variable
# named for one is refused as the file-only tables' are, rather than ignored.
_FILE_ONLY_LISTS: dict[str, str] = {
    f.name: f"{f.name} = [...]"
    for f in _FIELDS
    if not _one_value(f.type) and f.name not in (*_FILE_ONLY_TABLES, *_ENV_TABLES)
}


def _file_only_variables(env: Mapping[str, str]) -> str | None:
    """The error for the non-empty variables that name a table only the settings file sets, or None."""
    for table, instead in (*_FILE_ONLY_TABLES.items(), *_FILE_ONLY_LISTS.items()):
        name = f"FULCRUM_{table.upper()}"
        found = sorted(v for v, value in env.items() if value and (v == name or v.startswith(f"{name}__")))
        if found:
            return (
                f"{', '.join(found)} ({table}): no variable sets {table}; the settings file "
                f"(FULCRUM_CONFIG or --config) does, with {instead}"
            )
    return None


# Variables of other namespaces: secret references, test and benchmark databases.
_NOT_SETTINGS = ("FULCRUM_SECRET_", "FULCRUM_TEST_", "FULCRUM_BENCH_")


def misspelt_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """A line for each ``FULCRUM_*`` variable that is no setting but nearly spells one (it is ignored)."""
    env = os.environ if environ is None else environ
    names = [*_ENV_FIELDS, "FULCRUM_CONFIG", *_table_variable_names()]
    # The loader checks the keys of these, and refuses those of the file's own tables.
    tables = tuple(f"FULCRUM_{table.upper()}__" for table in (*_ENV_TABLES, *_FILE_ONLY_TABLES))
    unknown = [
        v for v in sorted(env) if v.startswith("FULCRUM_") and v not in names and not v.startswith(tables)
    ]
    return [
        f"{var} is not a setting and is ignored; did you mean {meant}?"
        for var in unknown
        if not var.startswith(_NOT_SETTINGS)
        for meant in difflib.get_close_matches(var, names, n=1, cutoff=0.88)
    ]


class SettingsError(ValueError):
    """Settings that cannot be loaded; the message names the file or variable, the key and the problem."""


_UNKNOWN_KEY = re.compile(
    r"^Object contains unknown field `(?P<name>[^`]+)`(?: - at `\$\.(?P<table>[^`]+)`)?$"
)


def _did_you_mean(message: str, root: type[msgspec.Struct] | None = None) -> str:
    """``; did you mean port?`` for msgspec's unknown-field message about a near miss of a settings key
    (as an unknown ``FULCRUM_*`` variable gets), at the top level or in any table (``[breaker]``,
    ``[plugins.<id>]``, ``[plugins.<id>.storage_quota]``, ``[slots."<slot>"]``), else nothing; ``root``
    is the struct the message's path starts from (``Settings`` unless given)."""
    unknown = _UNKNOWN_KEY.match(message)
    if unknown is None:
        return ""
    kind = struct_at(root or Settings, unknown["table"] or "")
    if kind is None:
        return ""
    return did_you_mean(unknown["name"], [f.encode_name for f in msgspec.structs.fields(kind)])


_AT_KEY = re.compile(r" - at `\$\.(?P<key>[^`.\[]+)(?P<rest>[^`]*)`$")
# What ``Settings.__post_init__`` raises about a key that must agree with another.
_CROSS_KEY = re.compile(r"^(?P<key>(?P<table>slow_calls|breaker)\.\w+|loop_stall_ms): (?P<problem>.+)$", re.S)


def _problem(message: str, given: Mapping[str, object]) -> str:
    """msgspec's ``message`` without its path; for a value failing a pattern, what it must be in words and
    the value given (``given``: the settings as read), escaped; for one out of its bounds or of the wrong
    length, what it must be (``must be at least 1``, ``must be at most 200 characters; it has 230``)."""
    path, problem = split_message(message)
    words = pattern_problem(problem)
    if words is None:
        return bound_problem(problem, value_at(given, path)) or problem
    value = value_at(given, path)
    return f"{words}; it is {echoed(value)}" if isinstance(value, str) else words


def load_settings(
    *, config_file: str | Path | None = None, environ: Mapping[str, str] | None = None, **overrides: object
) -> Settings:
    """Build ``Settings`` from defaults, a TOML file, ``FULCRUM_*`` variables and explicit overrides.

    Raises :class:`SettingsError` naming where the bad value came from and its key (e.g.
    ``FULCRUM_PORT (port): Expected `int`, got `str```), or the file that cannot be read.
    """
    env = os.environ if environ is None else environ
    if (refused := _file_only_variables(env)) is not None:
        raise SettingsError(refused)
    raw: dict[str, object] = {}
    came_from: dict[str, str] = {}
    path = config_file or env.get("FULCRUM_CONFIG")
    if path:
        raw.update(_read_config(Path(path)))
        came_from.update(dict.fromkeys(raw, str(path)))
    for var, field in _ENV_FIELDS.items():
        if var in env and env[var] != "":
            raw[field] = env[var]
            came_from[field] = var
    for table, keys in _table_variables(env).items():
        given = raw.get(table)
        if given is not None and not isinstance(given, dict):
            continue  # the file's value is no table: its own error names it
        raw[table] = {**(given or {}), **{key: value for key, (_, value) in keys.items()}}
        came_from.update({f"{table}.{key}": var for key, (var, _) in keys.items()})
        variables = f"FULCRUM_{table.upper()}__*"
        came_from[table] = f"{came_from[table]} and {variables}" if table in came_from else variables
    raw.update({k: v for k, v in overrides.items() if v is not None})
    if "slots" in raw:
        raw["slots"] = _slot_inventory(raw["slots"], came_from.get("slots", "settings"))
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc) + _did_you_mean(str(exc))
        at = _AT_KEY.search(str(exc))
        cross = _CROSS_KEY.match(message)
        if at is None and cross is not None:
            where = (
                came_from.get(cross["key"]) or came_from.get(cross["table"])
                or came_from.get("deadlines", "settings")
            )
            raise SettingsError(f"{where} ({cross['key']}): {cross['problem']}") from None
        if at is None:
            raise SettingsError(f"{path or 'settings'}: {message}") from None
        key = at["key"] + at["rest"]
        where = came_from.get(key) or came_from.get(at["key"], "settings")
        raise SettingsError(f"{where} ({key}): {_problem(str(exc), raw)}{_did_you_mean(str(exc))}") from None
    for i, offer in enumerate(settings.home_defaults):  # shown to customers, as a plugin's offers are
        shown = find_display_problem(offer)
        if shown is not None:
            where = came_from.get("home_defaults", "settings")
            raise SettingsError(f"{where} (home_defaults[{i}].{shown[0]}): {shown[1]}")
    if settings.database_url:
        problem = _database_url_problem(settings.database_url)
        if problem:
            raise SettingsError(f"{came_from.get('database_url', 'settings')} (database_url): {problem}")
    if settings.redis_url:
        problem = _redis_url_problem(settings.redis_url)
        if problem:
            raise SettingsError(f"{came_from.get('redis_url', 'settings')} (redis_url): {problem}")
    return settings


def _slot_inventory(given: object, where: str) -> object:
    """The built-in inventory with each ``[slots."<id>"]`` table of ``given`` merged over its slot key by
    key (a key left out keeps the built-in value); ``SettingsError`` for a slot id the SDK does not know
    or a bad value, naming ``where`` it came from and the slot."""
    if not isinstance(given, dict):
        return given  # not a table: the Struct's conversion names the problem
    inventory = default_slots()
    unknown = [slot for slot in given if slot not in inventory]
    if unknown:
        raise SettingsError(
            f'{where} (slots."{unknown[0]}"): no such slot; the known slots are {", ".join(inventory)}'
        )
    for slot, tuning in given.items():
        if isinstance(tuning, SlotConfig):
            inventory[slot] = tuning  # a whole slot from the overrides
            continue
        merged = {**msgspec.to_builtins(inventory[slot]), **tuning} if isinstance(tuning, dict) else tuning
        try:
            inventory[slot] = msgspec.convert(merged, SlotConfig, strict=False)
        except msgspec.ValidationError as exc:
            at = _AT_KEY.search(str(exc))
            key = f'slots."{slot}"' + (f".{at['key']}{at['rest']}" if at else "")
            problem = _problem(str(exc), merged if isinstance(merged, dict) else {})
            raise SettingsError(f"{where} ({key}): {problem}{_did_you_mean(str(exc), SlotConfig)}") from None
    return inventory


def _database_url_problem(url: str) -> str | None:
    """Why the host cannot use the database ``url``, or None when it can."""
    from sqlalchemy.exc import ArgumentError

    from fulcrum_core.data.db import normalize_url

    try:
        backend = normalize_url(url).get_backend_name()
    except ArgumentError:
        return "not a database URL (e.g. postgresql://user@host/db or sqlite:///path/fulcrum.db)"
    if backend not in ("sqlite", "postgresql"):
        return f"the host runs on SQLite or PostgreSQL, not {backend!r}"
    # A driver named in the URL but not installed (postgresql+psycopg2://) was a traceback at the first
    # connection; the dialect and its DB-API module are loaded here instead, as the engine would.
    parsed = normalize_url(url)
    try:
        parsed.get_dialect().import_dbapi()
    except (ArgumentError, ImportError):
        shipped = (
            "PostgreSQL with psycopg (postgresql://… or postgresql+psycopg://…)"
            if backend == "postgresql"
            else "SQLite with Python's sqlite3 (sqlite:///…)"
        )
        return f"the driver {parsed.get_driver_name()!r} is not installed; the host connects to {shipped}"
    return None


def _redis_url_problem(url: str) -> str | None:
    """Why ``url`` is no Redis URL, or None when it parses (whether Redis answers is the worker's to
    find out: it starts without it)."""
    from redis.connection import parse_url

    try:
        parse_url(url)  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
    except ValueError as exc:
        return f"not a Redis URL: {exc} (e.g. redis://host:6379/0)"
    return None


def _read_config(path: Path) -> dict[str, object]:
    """The TOML settings file's table; ``SettingsError`` when it cannot be read or is not TOML."""
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise SettingsError(f"cannot read the settings file {path}: {exc.strerror or exc}") from None
    try:
        # A UTF-8 byte-order mark (Windows editors write one) is no TOML error: it was "Invalid statement".
        return msgspec.toml.decode(content.removeprefix(codecs.BOM_UTF8))  # type: ignore[no-any-return]
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None
