"""Plugin storage quotas: every write keeps its plugin's usage row in its own transaction, and a write
that would take a measure past the quota raises ``QuotaExceeded`` and changes nothing, on SQLite and
PostgreSQL alike and under concurrent writers."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner
from fulcrum_core.cli import main
from fulcrum_core.data.db import Database
from fulcrum_core.data.quota import Usage, recount, size_of, usage
from fulcrum_core.data.storage import SqlPluginStorage
from fulcrum_core.data.types import UTCDateTime
from fulcrum_core.settings import (
    Deadlines,
    PluginQuota,
    PluginSettings,
    Settings,
    SettingsError,
    load_settings,
)
from fulcrum_sdk.errors import LimitExceeded, QuotaExceeded
from fulcrum_sdk.storage import MemoryStorage, StorageQuota, document_size
from fulcrum_sdk.testing import PERSONAS
from sqlalchemy import column, func, select, table

from tests.core.test_storage import _race

BEFORE = "20261130_02_idempotency_client"


def _counted(db: Database, plugin: str) -> Usage:
    """The plugin's usage counted from its rows, as the kept row should say."""
    docs = table("plugin_documents", column("plugin_id"), column("key"), column("value"))
    counters = table("plugin_counters", column("plugin_id"))
    size = size_of(db.dialect, docs.c.key) + size_of(db.dialect, docs.c.value)
    with db.engine.connect() as conn:
        n, total = conn.execute(
            select(func.count(), func.coalesce(func.sum(size), 0)).where(docs.c.plugin_id == plugin)
        ).one()
        c = conn.execute(select(func.count()).where(counters.c.plugin_id == plugin)).scalar_one()
    return Usage(plugin_id=plugin, documents=int(n), document_bytes=int(total), counters=int(c))


def _kept(db: Database, plugin: str) -> Usage:
    return next((u for u in usage(db) if u.plugin_id == plugin), Usage(
        plugin_id=plugin, documents=0, document_bytes=0, counters=0))


def _bytes(key: str, value: Any) -> int:
    return document_size(key, msgspec.json.encode(value))


def test_writes_keep_the_usage_row_exact(db: Database) -> None:
    """Inserts, replacements larger and smaller, deletes (of present and absent keys) and new and
    existing counters each move the kept usage exactly as a recount sees it."""
    s = SqlPluginStorage(db, "p")
    s.put("a", {"name": "体检", "n": 1})
    s.put("b", [1, 2, 3])
    assert _kept(db, "p") == _counted(db, "p")
    assert _kept(db, "p").documents == 2
    assert _kept(db, "p").document_bytes == _bytes("a", {"name": "体检", "n": 1}) + _bytes("b", [1, 2, 3])
    s.put("a", "x" * 500)
    s.put("b", 1)
    s.delete("a")
    s.delete("missing")
    s.add("c1", 5)
    s.add("c1", -2)
    s.add("c2", 1)
    assert _kept(db, "p") == _counted(db, "p") == Usage(
        plugin_id="p", documents=1, document_bytes=_bytes("b", 1), counters=2
    )


def test_a_document_past_the_count_is_refused_and_nothing_changes(db: Database) -> None:
    """At two documents a third key is refused, naming the measure; replacing or deleting one of the
    two still works, and after a delete a new key fits again."""
    s = SqlPluginStorage(db, "p", quota=StorageQuota(documents=2))
    s.put("a", 1)
    s.put("b", 2)
    with pytest.raises(QuotaExceeded) as refused:
        s.put("c", 3)
    assert (refused.value.what, refused.value.used, refused.value.limit, refused.value.key) == (
        "documents", 2, 2, "c"
    )
    assert "'c'" in str(refused.value)
    assert "documents past 2" in str(refused.value)
    assert s.get("c") is None
    assert _kept(db, "p") == _counted(db, "p")
    s.put("a", {"bigger": "value"})
    s.delete("b")
    s.put("c", 3)
    assert s.get("c") == 3
    assert _kept(db, "p") == _counted(db, "p")


def test_bytes_past_the_quota_are_refused_and_a_smaller_write_is_always_taken(db: Database) -> None:
    """Growing past ``document_bytes`` is refused (new key or larger replacement); once over a quota
    that was lowered, a smaller replacement and a delete are still taken, so a plugin can make room."""
    s = SqlPluginStorage(db, "p", quota=StorageQuota(document_bytes=100))
    s.put("k", "x" * 80)
    with pytest.raises(QuotaExceeded, match="document_bytes"):
        s.put("k", "x" * 100)
    with pytest.raises(QuotaExceeded, match="document_bytes"):
        s.put("other", "x" * 20)
    assert s.get("k") == "x" * 80
    lowered = SqlPluginStorage(db, "p", quota=StorageQuota(document_bytes=10))
    lowered.put("k", "x" * 40)  # still over, but smaller
    assert lowered.get("k") == "x" * 40
    with pytest.raises(QuotaExceeded):
        lowered.put("k", "x" * 41)
    lowered.delete("k")
    nothing = Usage(plugin_id="p", documents=0, document_bytes=0, counters=0)
    assert _kept(db, "p") == _counted(db, "p") == nothing


def test_a_new_counter_past_the_quota_is_refused_and_existing_ones_still_move(db: Database) -> None:
    """At one counter a second is refused; the first still moves and keeps its bounds (a bound that
    is crossed still raises ``LimitExceeded``, not a quota error)."""
    s = SqlPluginStorage(db, "p", quota=StorageQuota(counters=1))
    assert s.add("stock", 3, upper=5) == 3
    with pytest.raises(QuotaExceeded, match="counters"):
        s.add("other", 1)
    assert s.counter("other") == 0
    assert s.add("stock", 2, upper=5) == 5
    with pytest.raises(LimitExceeded):
        s.add("stock", 1, upper=5)
    with pytest.raises(LimitExceeded):
        s.add("fresh", 9, upper=5)  # a fresh counter that would break its bound: neither created nor counted
    assert _kept(db, "p") == _counted(db, "p")
    assert _kept(db, "p").counters == 1


def test_quotas_are_per_plugin(db: Database) -> None:
    """One plugin at its quota does not stop another."""
    full = SqlPluginStorage(db, "full", quota=StorageQuota(documents=1))
    other = SqlPluginStorage(db, "other", quota=StorageQuota(documents=1))
    full.put("a", 1)
    with pytest.raises(QuotaExceeded):
        full.put("b", 1)
    other.put("a", 1)
    assert [u.documents for u in usage(db)] == [1, 1]


def test_concurrent_new_keys_never_pass_the_quota(db: Database) -> None:
    """Twelve writers of twelve new keys against a quota of five: exactly five are stored and counted."""
    s = SqlPluginStorage(db, "p", quota=StorageQuota(documents=5))
    outcomes = _race(12, lambda i: s.put(f"k{i}", {"i": i}))
    assert sum(o is None for o in outcomes) == 5
    assert all(isinstance(o, QuotaExceeded) for o in outcomes if o is not None)
    assert _kept(db, "p") == _counted(db, "p")
    assert _kept(db, "p").documents == 5


def test_concurrent_writes_of_one_key_count_it_once(db: Database) -> None:
    """Writers of one new document (values of different sizes), then writers and deleters of it
    mixed, and adders of one new counter: the kept usage still equals a recount."""
    s = SqlPluginStorage(db, "p")
    assert all(o is None for o in _race(8, lambda i: s.put("same", "x" * (10 * i))))
    assert _kept(db, "p") == _counted(db, "p")
    assert _kept(db, "p").documents == 1
    mixed = _race(8, lambda i: s.put("same", "y" * i) if i % 2 else s.delete("same"))
    assert all(o is None for o in mixed)
    assert _kept(db, "p") == _counted(db, "p")
    assert sorted(_race(8, lambda i: s.add("hits", 1))) == list(range(1, 9))  # type: ignore[type-var]
    assert s.counter("hits") == 8
    assert _kept(db, "p") == _counted(db, "p")
    assert _kept(db, "p").counters == 1


def test_the_migration_counts_what_was_stored_before_it(database_url: str) -> None:
    """Documents and counters stored before the revision are counted into the usage rows by plugin,
    and the kept rows go on from there; the downgrade drops the table."""
    db = Database(database_url)
    try:
        db.upgrade(BEFORE)
        at = datetime(2026, 11, 30, tzinfo=UTC)
        docs = table("plugin_documents", column("plugin_id"), column("key"), column("value"),
                     column("updated_at", UTCDateTime()))
        counters = table("plugin_counters", column("plugin_id"), column("key"), column("value"),
                         column("updated_at", UTCDateTime()))
        with db.begin() as conn:
            conn.execute(docs.insert(), [
                {"plugin_id": "a", "key": "k1", "value": json.dumps("体检", ensure_ascii=False),
                 "updated_at": at},
                {"plugin_id": "a", "key": "键", "value": "[1,2]", "updated_at": at},
                {"plugin_id": "b", "key": "k", "value": "{}", "updated_at": at},
            ])
            conn.execute(counters.insert(), [
                {"plugin_id": "a", "key": "c", "value": 1, "updated_at": at},
                {"plugin_id": "c", "key": "c", "value": 1, "updated_at": at},
            ])
        db.upgrade()
        assert usage(db) == [
            Usage(plugin_id="a", documents=2, counters=1,
                  document_bytes=_bytes("k1", "体检") + document_size("键", b"[1,2]")),
            Usage(plugin_id="b", documents=1, document_bytes=document_size("k", b"{}"), counters=0),
            Usage(plugin_id="c", documents=0, document_bytes=0, counters=1),
        ]
        SqlPluginStorage(db, "a").put("k1", "x")
        assert _kept(db, "a") == _counted(db, "a")
        db.downgrade(BEFORE)
        db.upgrade()
        assert _kept(db, "a") == _counted(db, "a")
    finally:
        db.dispose()


def test_a_plugins_own_quota_stands_in_for_the_hosts_measure_by_measure() -> None:
    """``[plugins.<id>.storage_quota]`` replaces the host's ``storage_quota`` for that plugin only, and
    only in the measures it names: the others keep the host's values, not the SDK's defaults."""
    settings = Settings(
        storage_quota=StorageQuota(documents=10, counters=5),
        plugins={"big": PluginSettings(storage_quota=PluginQuota(documents=1_000))},
    )
    assert settings.quota_of("big") == StorageQuota(documents=1_000, counters=5)
    assert settings.quota_of("other") == StorageQuota(documents=10, counters=5)
    assert Settings().quota_of("any") == StorageQuota()


def test_the_hosts_quota_is_set_by_variables_too() -> None:
    """``FULCRUM_STORAGE_QUOTA__<MEASURE>`` sets one measure, as the other tables' variables do."""
    settings = load_settings(environ={"FULCRUM_STORAGE_QUOTA__DOCUMENTS": "5"})
    assert settings.storage_quota == StorageQuota(documents=5)


@pytest.mark.parametrize("table", ["storage_quota", "plugins.p.storage_quota"])
def test_a_limit_past_the_databases_integers_is_refused_by_the_settings(tmp_path: Any, table: str) -> None:
    """A limit of 2^63 loaded, and then every write of every plugin failed (an overflow on SQLite,
    "retry later" on PostgreSQL); the settings refuse it, naming the key."""
    config = tmp_path / "fulcrum.toml"
    config.write_text(f"[{table}]\ndocuments = {2**63}\n")
    with pytest.raises(SettingsError, match=r"documents\): must be at most 1000000000000000(?!\n)$"):
        load_settings(config_file=config, environ={})


def test_a_hook_writing_past_its_quota_is_left_out_and_logged(
    make_app: Callable[..., Any], kit: Any, log_records: Any
) -> None:
    """A plugin that stores a new document on every page: once its quota is reached its page call
    fails (the page still answers, the plugin degraded), nothing past the quota is stored, and one
    warning names the plugin and the measure."""

    async def home_slot_offers(ctx: Any) -> Any:
        await ctx.storage.aput(f"page:{ctx.request_id}", {"pad": "x" * 100})
        return [kit.offer("home.banner", "hoarder")]

    app = make_app(
        kit.plugin("hoarder", home_slot_offers=home_slot_offers),
        plugins={"hoarder": PluginSettings(storage_quota=PluginQuota(documents=2))},
        # Its writes run in worker threads, the first compiling their statements: a loaded machine
        # took more than the default 150 ms over one, which is not what this test is about.
        deadlines=Deadlines(home_slot_offers=5_000), home_budget_ms=10_000,
    )
    token = app.token(PERSONAS["young_professional"].id)
    records = log_records("fulcrum.storage")
    pages = [app.get("/v1/home", token=token) for _ in range(4)]
    assert [p.status_code for p in pages] == [200] * 4
    assert [[d["plugin"] for d in p.json()["degraded"]] for p in pages] == [[], [], ["hoarder"], ["hoarder"]]
    assert _kept(app.runtime.db, "hoarder").documents == 2
    refused = [r.getMessage() for r in records if "refused at its quota" in r.getMessage()]
    assert len(refused) == 1
    assert "'hoarder', documents 2 of 2" in refused[0]


def test_db_storage_lists_each_plugins_use_against_its_quota(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``fulcrum db storage`` prints each plugin's measures against its quota, marking one at 90 % or
    more; ``--json`` one object per plugin with its quota."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fulcrum.toml").write_text(
        'state_dir = "state"\n[storage_quota]\ndocuments = 10\n'
        '[plugins.big.storage_quota]\ndocuments = 1000\n'
    )
    # The state directory named in the environment as well: another test of the same worker may have
    # left FULCRUM_STATE_DIR set, and the environment overrides the file.
    runner = CliRunner(env={
        "FULCRUM_STATE_DIR": str(tmp_path / "state"), "FULCRUM_DATABASE_URL": None, "FULCRUM_CONFIG": None,
    })
    assert runner.invoke(main, ["--config", "fulcrum.toml", "db", "upgrade"]).exit_code == 0
    empty = runner.invoke(main, ["--config", "fulcrum.toml", "db", "storage"])
    assert empty.exit_code == 0
    assert "no plugin has written" in empty.output
    db = Database(f"sqlite:///{tmp_path / 'state' / 'fulcrum.db'}")
    try:
        for i in range(9):
            SqlPluginStorage(db, "near").put(f"k{i}", i)
        SqlPluginStorage(db, "big").put("k", 1)
    finally:
        db.dispose()
    shown = runner.invoke(main, ["--config", "fulcrum.toml", "db", "storage"])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0].startswith("big: documents 1 of 1,000, document_bytes ")
    assert lines[0].endswith("of 4.0 GiB, counters 0 of 20,000,000")
    assert lines[1].startswith("near: documents 9 of 10 (!), document_bytes ")
    as_json = runner.invoke(main, ["--config", "fulcrum.toml", "db", "storage", "--json"])
    rows = [json.loads(line) for line in as_json.output.splitlines()]
    assert [(r["plugin_id"], r["documents"], r["quota"]["documents"]) for r in rows] == [
        ("big", 1, 1000), ("near", 9, 10)
    ]


def test_memory_storage_keeps_the_same_quota() -> None:
    """The SDK's in-memory storage refuses as the host does, so a plugin's tests can meet the quota."""
    s = MemoryStorage(StorageQuota(documents=1, document_bytes=30, counters=1))
    s.put("a", "x" * 10)
    with pytest.raises(QuotaExceeded, match="documents"):
        s.put("b", 1)
    with pytest.raises(QuotaExceeded, match="document_bytes"):
        s.put("a", "x" * 40)
    s.put("a", "y")  # smaller: taken
    s.add("c", 1)
    with pytest.raises(QuotaExceeded, match="counters"):
        s.add("d", 1)
    s.delete("a")
    s.put("b", 1)
    assert s.get("b") == 1
    assert MemoryStorage().add("any", 1) == 1  # no quota by default


def test_a_recount_corrects_usage_that_writes_of_older_code_left_behind(db: Database) -> None:
    """Rows stored without their usage (as a worker still on the code before the usage row stores
    them during a rolling deploy) leave the usage short or long; a recount makes it the rows' again,
    for every plugin, and the kept usage goes on from there."""
    s = SqlPluginStorage(db, "p", quota=StorageQuota(documents=3))
    s.put("a", 1)
    s.add("c", 1)
    at = datetime(2026, 11, 30, tzinfo=UTC)
    docs = table("plugin_documents", column("plugin_id"), column("key"), column("value"),
                 column("updated_at", UTCDateTime()))
    with db.begin() as conn:  # an older worker: stored, not counted; and one that deleted, not counted
        conn.execute(docs.insert(), [
            {"plugin_id": "p", "key": f"old{i}", "value": "1", "updated_at": at} for i in range(2)
        ] + [{"plugin_id": "q", "key": "k", "value": "[]", "updated_at": at}])
        conn.execute(docs.delete().where(docs.c.key == "a"))
    assert _kept(db, "p").documents == 1
    assert recount(db) == [_counted(db, "p"), _counted(db, "q")]
    assert _kept(db, "p") == _counted(db, "p")
    assert _kept(db, "p").documents == 2
    s.put("new", 1)
    with pytest.raises(QuotaExceeded):
        s.put("one-more", 1)
    assert _kept(db, "p") == _counted(db, "p")


def test_a_recount_while_plugins_write_leaves_the_usage_exact(db: Database) -> None:
    """Recounts racing writers of new, replaced and deleted documents and new counters: afterwards the
    kept usage still equals the rows."""
    s = SqlPluginStorage(db, "p")

    def work(i: int) -> object:
        if i % 4 == 0:
            return recount(db)
        for n in range(5):
            s.put(f"k{(i * n) % 7}", "x" * (i + n))
            if n % 2:
                s.delete(f"k{(i + n) % 7}")
            s.add(f"c{i}-{n}", 1)
        return None

    outcomes = _race(8, work)
    assert not [o for o in outcomes if isinstance(o, Exception)]
    assert _kept(db, "p") == _counted(db, "p")


def test_db_storage_recount_prints_the_counted_usage(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """``fulcrum db storage --recount`` corrects the usage rows first and prints them."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fulcrum.toml").write_text('state_dir = "state"\n')
    # The state directory named in the environment as well: another test of the same worker may have
    # left FULCRUM_STATE_DIR set, and the environment overrides the file.
    runner = CliRunner(env={
        "FULCRUM_STATE_DIR": str(tmp_path / "state"), "FULCRUM_DATABASE_URL": None, "FULCRUM_CONFIG": None,
    })
    assert runner.invoke(main, ["--config", "fulcrum.toml", "db", "upgrade"]).exit_code == 0
    db = Database(f"sqlite:///{tmp_path / 'state' / 'fulcrum.db'}")
    try:
        SqlPluginStorage(db, "p").put("k", 1)
        with db.begin() as conn:
            conn.execute(table("plugin_storage_usage", column("documents")).update().values(documents=7))
    finally:
        db.dispose()
    assert "documents 7 of" in runner.invoke(main, ["--config", "fulcrum.toml", "db", "storage"]).output
    fixed = runner.invoke(main, ["--config", "fulcrum.toml", "db", "storage", "--recount"])
    assert fixed.exit_code == 0, fixed.output
    assert fixed.output.startswith("p: documents 1 of 20,000,000,")
