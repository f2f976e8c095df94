"""Fixtures for the host's tests: settings in a temporary directory, test plugins, contexts and an app.

Fixtures (all function-scoped):

- ``settings`` — ``Settings`` with ``state_dir`` and a SQLite file under ``tmp_path`` and a fixed
  pairwise secret; tests derive variants with ``msgspec.structs.replace``.
- ``kit`` — a :class:`PluginKit`: build plugins (objects carrying a ``MANIFEST`` and hookimpls),
  offers, hits, feed items and plugin contexts without any database.
- ``release`` — a ``threading.Event`` set at teardown; test plugins that hang in a worker thread wait
  on it, so no thread outlives the test.
- ``make_app`` — builds the real app (``create_app``) around a runtime with exactly the plugins given,
  the SDK's synthetic personas as customers and a migrated SQLite database; returns an
  :class:`AppHarness` with a litestar ``TestClient`` and a token helper.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from fulcrum_core.settings import Settings
from fulcrum_sdk import hookimpl
from fulcrum_sdk.context import Customer, PluginContext, ScopedData
from fulcrum_sdk.data import StaticDataProvider
from fulcrum_sdk.manifest import Manifest
from fulcrum_sdk.models import (
    Action,
    FeedItem,
    LocalizedText,
    SearchHit,
    SlotOffer,
    Targeting,
    TransactionType,
)
from fulcrum_sdk.storage import MemoryStorage
from fulcrum_sdk.testing import PERSONAS

PLACEMENTS = (
    "slot:home.banner",
    "slot:home.kingkong",
    "slot:home.popup",
    "slot:home.notice",
    "search:contribute",
    "feed:contribute",
)
ALL_SLOTS = ("home.banner/v1", "home.kingkong/v1", "home.popup/v1", "home.notice/v1")
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)

Declarations = Mapping[str, Mapping[str, Any]]
"""Transaction type key → its ``[transaction_types."<key>"]`` table in fulcrum-plugin.toml."""


def declaration(tx_type: TransactionType) -> dict[str, Any]:
    """The manifest declaration stating exactly what ``tx_type`` registers (its risk and amount field)."""
    out: dict[str, Any] = {"risk_level": tx_type.risk_level} if tx_type.risk_level else {}
    if tx_type.product_risks:
        out |= {"product_field": tx_type.product_field, "product_risks": dict(tx_type.product_risks)}
    out |= {"account_fields": sorted(tx_type.account_fields)} if tx_type.account_fields else {}
    return out | ({"amount_field": tx_type.amount_field} if tx_type.amount_field else {"moves_money": False})


def registered_declarations(register_impl: Callable[..., Any] | None) -> dict[str, dict[str, Any]]:
    """What a test plugin's ``register_transaction_types`` registers, as manifest declarations; ``{}``
    when it fails (the host reports that failure itself)."""
    found: list[TransactionType] = []
    if register_impl is None:
        return {}
    try:
        register_impl(register=found.append) if register_impl.__code__.co_argcount else register_impl()
    except BaseException:  # the tests of a failing register hook raise even SystemExit
        return {}
    return {t.key: declaration(t) for t in found if isinstance(t, TransactionType)}


@pytest.fixture
def any_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve``, ``demo`` and ``dev`` with their server stubbed skip the busy-port check: the default port
    may be the developer's own demo, running beside the tests as the README has it."""
    from fulcrum_core.cli import dev, serve

    monkeypatch.setattr(serve, "refuse_busy_port", lambda *args, **kwargs: None)
    monkeypatch.setattr(dev, "refuse_busy_port", lambda *args, **kwargs: None)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings whose every file lives under the test's temporary directory (no branch layer)."""
    return Settings(
        state_dir=str(tmp_path / "state"),
        database_url=f"sqlite:///{tmp_path / 'fulcrum.db'}",
        pairwise_secret="test-pairwise-secret",
        branches_dir=str(tmp_path / "no-branches"),  # not the repository's branches/ in the cwd
        # A cold consent read on a loaded CI machine can take longer than the default 100 ms, which
        # would leave partner plugins out at random; the tests of that deadline set their own.
        data_budget_ms=2_000,
    )


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An event set when the test ends: hanging sync test plugins wait on it instead of forever."""
    event = threading.Event()
    yield event
    event.set()


class TestPlugin:
    """A plugin object built by :meth:`PluginKit.plugin`: hookimpls as attributes plus ``MANIFEST``."""

    __test__ = False  # not a test class, despite the name

    MANIFEST: Manifest

    def __init__(self, manifest: Manifest, impls: dict[str, Callable[..., Any]]) -> None:
        self.MANIFEST = manifest
        for name, fn in impls.items():
            setattr(self, name, hookimpl(fn))


class PluginKit:
    """Builders for test plugins, their results and their contexts."""

    now = NOW

    def manifest(
        self,
        plugin_id: str,
        *,
        hooks: Sequence[str],
        kind: str = "department",
        scopes: Sequence[str] | None = None,
        optional: Sequence[str] = (),
        slots: Sequence[str] | None = None,
        transaction_types: Sequence[str] | Declarations = (),
        sdk: str = ">=0.1,<1",
    ) -> Manifest:
        """A valid manifest; by default it requests every placement scope and ``profile:basic``."""
        required = list(scopes) if scopes is not None else ["profile:basic", *PLACEMENTS]
        if transaction_types and "transactions:write" not in required:
            required.append("transactions:write")
        if slots is None:
            slots = (
                [s for s in ALL_SLOTS if "slot:" + s.split("/")[0] in required]
                if {"home_slot_offers", "home_slot_campaigns"} & set(hooks)
                else []
            )
        return msgspec.convert(
            {
                "id": plugin_id,
                "name": {"zh-CN": f"测试插件 {plugin_id}", "en": f"Test plugin {plugin_id}"},
                "description": {"zh-CN": "用于测试的插件", "en": "A plugin for tests"},
                "publisher": "test-bank",
                "kind": kind,
                "sdk": sdk,
                "hooks": list(hooks),
                "slots": list(slots),
                "transaction_types": (
                    {k: dict(v) for k, v in transaction_types.items()}
                    if isinstance(transaction_types, Mapping)
                    else list(transaction_types)
                ),
                "scopes": {
                    "required": dict.fromkeys(required, "needed for the test"),
                    "optional": dict.fromkeys(optional, "optional for the test"),
                },
                "owner": {"name": "Test Team", "email": "test@example.com"},
                "version": "1.0.0",
            },
            Manifest,
        )

    def plugin(
        self,
        plugin_id: str,
        *,
        kind: str = "department",
        scopes: Sequence[str] | None = None,
        optional: Sequence[str] = (),
        transaction_types: Sequence[str] | Declarations = (),
        **impls: Callable[..., Any],
    ) -> TestPlugin:
        """A plugin with the given hook implementations (``search=lambda ctx, query: [...]``).

        ``transaction_types`` as keys are declared as ``register_transaction_types`` registers them
        (a key it does not register is declared empty); as a mapping, exactly as given."""
        if transaction_types and not isinstance(transaction_types, Mapping):
            derived = registered_declarations(impls.get("register_transaction_types"))
            transaction_types = {key: derived.get(key, {}) for key in transaction_types}
        manifest = self.manifest(
            plugin_id,
            hooks=list(impls),
            kind=kind,
            scopes=scopes,
            optional=optional,
            transaction_types=transaction_types,
        )
        return TestPlugin(manifest, impls)

    @staticmethod
    def text(zh: str, en: str | None = None) -> LocalizedText:
        """Localized text."""
        return LocalizedText(zh_CN=zh, en=en)

    def offer(self, slot: str, key: str, *, priority: int = 100, **extra: Any) -> SlotOffer:
        """A valid slot offer (``slot`` may be given without ``/v1``)."""
        slot = slot if "/" in slot else f"{slot}/v1"
        return SlotOffer(
            slot=slot,
            key=key,
            title=self.text(f"标题 {key}", f"Title {key}"),
            action=Action(uri=f"fulcrum://open/{key}"),
            priority=priority,
            **extra,
        )

    def hit(self, key: str, *, relevance: float = 0.5, kind: str = "function") -> SearchHit:
        """A valid search hit."""
        return SearchHit(
            key=key,
            kind=kind,
            title=self.text(f"结果 {key}"),  # type: ignore[arg-type]
            action=Action(uri=f"fulcrum://open/{key}"),
            relevance=relevance,
        )

    def item(
        self,
        column: str,
        key: str,
        *,
        priority: int = 100,
        published: datetime | None = None,
        targeting: Targeting | None = None,
    ) -> FeedItem:
        """A valid feed item."""
        return FeedItem(
            key=key,
            column=column,
            kind="article",
            title=self.text(f"文章 {key}"),
            action=Action(uri=f"https://example.com/{key}"),
            published_at=published or NOW,
            priority=priority,
            targeting=targeting,
        )

    def customer(self, persona: str = "young_professional") -> Customer:
        """The bank's view of one of the SDK's synthetic personas."""
        record = PERSONAS[persona]
        return Customer(
            id=record.id,
            segment=record.profile.segment,
            branch=record.profile.branch,
            locale=record.profile.locale,
        )

    def context(
        self, plugin: Any, *, granted: Sequence[str] | None = None, persona: str = "young_professional"
    ) -> PluginContext:
        """A context for ``plugin`` (a ``LoadedPlugin``) over the persona, with in-memory storage."""
        record = PERSONAS[persona]
        scopes = frozenset(plugin.granted if granted is None else granted)
        return PluginContext(
            plugin_id=plugin.id,
            customer=self.customer(persona),
            scopes=scopes,
            data=ScopedData(
                plugin_id=plugin.id,
                provider=StaticDataProvider({record.id: record}),
                customer_ref=record.id,
                granted=scopes,
            ),
            storage=MemoryStorage(),
            now=NOW,
            request_id="test-request",
        )


@pytest.fixture
def kit() -> PluginKit:
    """Builders for test plugins, results and contexts."""
    return PluginKit()


class AppHarness:
    """An app built around chosen plugins: ``client`` (a litestar TestClient), ``runtime`` and tokens."""

    def __init__(self, client: Any, runtime: Any) -> None:
        self.client = client
        self.runtime = runtime

    def token(
        self,
        sub: str = "synthetic-young-professional",
        scopes: Sequence[str] | None = None,
        *,
        kind: str = "customer",
        client_id: str = "fulcrum-dev",
    ) -> str:
        """A signed access token for ``sub`` (default scopes: the app's customer scopes), obtained by
        OAuth client ``client_id``."""
        from fulcrum_sdk.scopes import APP_SCOPES

        granted = APP_SCOPES if scopes is None else scopes
        issued: str = self.runtime.tokens.issue(sub, granted, kind=kind, client_id=client_id)
        return issued

    def get(self, path: str, *, token: str | None = None, **kwargs: Any) -> Any:
        """GET ``path`` with ``Authorization: Bearer`` (a customer token unless one is given)."""
        headers = {"Authorization": f"Bearer {token or self.token()}", **kwargs.pop("headers", {})}
        return self.client.get(path, headers=headers, **kwargs)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per session; tests copy it instead of migrating again."""
    from fulcrum_core.data.db import Database

    path = tmp_path_factory.mktemp("template") / "fulcrum.db"
    db = Database(f"sqlite:///{path}")
    db.upgrade()
    db.dispose()
    return path


@pytest.fixture
def make_app(
    settings: Settings, migrated_sqlite: Path, tmp_path: Path, anyio_backend: tuple[str, dict[str, bool]]
) -> Iterator[Callable[..., AppHarness]]:
    """Build the real app around exactly the plugins given (no entry points); closed at teardown. It runs
    on the test's event loop (``anyio_backend``: uvloop, as served; asyncio's own too with ``both_loops``).

    Keyword arguments replace settings fields (``deadlines=Deadlines(...)``); the database is a copy
    of the session's migrated SQLite file unless another database URL is configured.
    """
    from fulcrum_core.app import build_runtime, create_app
    from litestar.testing import TestClient

    clients: list[Any] = []

    def build(
        *plugins: object, settings_: Settings | None = None, provider_: Any = None, **overrides: Any
    ) -> AppHarness:
        conf = settings_ or settings
        if overrides:
            conf = msgspec.structs.replace(conf, **overrides)
        provider = provider_ or StaticDataProvider({r.id: r for r in PERSONAS.values()})
        runtime = build_runtime(conf, provider=provider, extra_plugins=plugins, load_entry_points=False)
        db_file = tmp_path / "fulcrum.db"
        if conf.database_url == f"sqlite:///{db_file}" and not db_file.exists():
            shutil.copyfile(migrated_sqlite, db_file)
        else:
            runtime.db.upgrade()
        backend, options = anyio_backend
        client = TestClient(create_app(conf, runtime=runtime), backend=backend, backend_options=options)
        client.__enter__()
        clients.append(client)
        return AppHarness(client, runtime)

    yield build
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def log_records() -> Iterator[Callable[[str], list[logging.LogRecord]]]:
    """``log_records(name)``: the records logger ``name`` emits from then on until the test ends, at any
    level it lets through. The app's logging setup replaces the root's handlers, and caplog's with them."""
    attached: list[tuple[logging.Logger, logging.Handler]] = []

    def records_of(name: str) -> list[logging.LogRecord]:
        records: list[logging.LogRecord] = []
        handler = logging.Handler(logging.DEBUG)
        handler.emit = records.append  # type: ignore[method-assign]
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        attached.append((logger, handler))
        return records

    yield records_of
    for logger, handler in attached:
        logger.removeHandler(handler)


@pytest.fixture
def redis_url() -> str:
    """The Redis server of the test environment (skipped when none is configured)."""
    url = os.environ.get("FULCRUM_TEST_REDIS_URL")
    if not url:
        pytest.skip("FULCRUM_TEST_REDIS_URL is not set; Redis tests need a server")
    return url


@pytest.fixture
def spec(app: Any) -> dict[str, Any]:
    """The OpenAPI document served by the module's ``app`` fixture."""
    r = app.client.get("/schema/openapi.json")
    assert r.status_code == 200
    document: dict[str, Any] = r.json()
    return document
