"""The store: loads the directory, hot-reloads edits, keeps the last good configuration."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec
import pytest
from fulcrum_core.branches import ApprovedPlugin, BranchConfigStore
from fulcrum_core.branches.watcher import Poller

Write = Callable[[str, str], Path]
MakeStore = Callable[..., BranchConfigStore]

PROMO_0755 = (
    '[plugins.merchant-promo]\nenabled = true\nrollout = {rollout}\npin = {{ "home.banner/v1" = 2 }}\n'
)


@pytest.fixture
def make_store(branch_dir: Path, approved: dict[str, ApprovedPlugin], inventory: dict[str, int]) -> MakeStore:
    """Build a store over ``branch_dir`` (approved set and environment overridable)."""

    def _make(
        provider: Callable[[], Mapping[str, ApprovedPlugin]] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> BranchConfigStore:
        return BranchConfigStore(
            branch_dir,
            provider or (lambda: approved),
            inventory,
            environ={"FULCRUM_SECRET_PROMO_TOKEN": "tok-SECRET-123"} if environ is None else environ,
        )

    return _make


@pytest.fixture
def loaded(write: Write, hq_text: str, make_store: MakeStore) -> BranchConfigStore:
    """A store over hq.toml, 0755.toml (promo at 100 %) and 028.toml (pension off), refreshed once."""
    write("hq.toml", hq_text)
    write("0755.toml", PROMO_0755.format(rollout=100))
    write("028.toml", "[plugins.pension]\nenabled = false\n")
    store = make_store()
    assert store.refresh()
    assert store.errors() == []
    return store


def test_loads_every_branch(loaded: BranchConfigStore) -> None:
    """Each branch file yields its own effective configuration on top of HQ."""
    assert loaded.branches() == ("028", "0755")
    assert loaded.effective("0755").enabled_ids == ("merchant-promo", "pension", "wealth-checkup")
    assert loaded.effective("028").enabled_ids == ("wealth-checkup",)
    assert loaded.generation == 1


def test_unchanged_files_are_not_recomputed(loaded: BranchConfigStore) -> None:
    """A refresh with nothing changed returns False and keeps the very same objects."""
    before = loaded.effective("0755")
    assert loaded.refresh() is False
    assert loaded.effective("0755") is before
    assert loaded.generation == 1


def test_branch_without_a_file_gets_hq_only_once(loaded: BranchConfigStore) -> None:
    """A branch with no file gets HQ's configuration, computed once and then reused."""
    config = loaded.effective("0571")
    assert config.branch == "0571"
    assert config.enabled_ids == ("pension", "wealth-checkup")
    assert loaded.effective("0571") is config


def test_an_edit_is_applied_on_refresh(loaded: BranchConfigStore, write: Write) -> None:
    """Hot reload: a changed rollout takes effect on the next refresh, without a restart."""
    write("0755.toml", PROMO_0755.format(rollout=30))
    assert loaded.refresh()
    assert loaded.effective("0755").plugins["merchant-promo"].rollout == 30
    assert loaded.generation == 2


def test_broken_branch_edit_keeps_the_last_good_config(
    loaded: BranchConfigStore, write: Write, caplog: pytest.LogCaptureFixture
) -> None:
    """An invalid edit never replaces a valid file: the old config serves; the error is listed and logged."""
    good = loaded.effective("0755")
    caplog.set_level(logging.INFO, logger="fulcrum.branches")
    path = write("0755.toml", PROMO_0755.format(rollout=130))
    assert loaded.refresh()
    assert loaded.effective("0755").digest == good.digest
    expected = f"{path}: plugins.merchant-promo.rollout: 130 is out of range 0–100"
    assert [p.line for p in loaded.errors()] == [expected]
    assert expected in caplog.messages
    write("0755.toml", PROMO_0755.format(rollout=50))
    assert loaded.refresh()
    assert loaded.errors() == []
    assert loaded.effective("0755").plugins["merchant-promo"].rollout == 50


def test_half_written_file_keeps_the_last_good_config(loaded: BranchConfigStore, write: Write) -> None:
    """A file caught mid-write (not TOML yet) is just another invalid edit."""
    good = loaded.effective("0755")
    write("0755.toml", '[plugins.merchant-promo]\nenabled = true\npin = { "home.ban')
    loaded.refresh()
    assert loaded.effective("0755") == good
    assert "not valid TOML" in loaded.errors()[0].problem


def test_an_emptied_file_keeps_the_last_good_config_until_deleted_or_commented(
    loaded: BranchConfigStore, write: Write, branch_dir: Path
) -> None:
    """A branch file caught empty (an editor rewriting it in place, a half-saved copy) keeps its last
    good configuration and says why: it was taken as "no entries", switching the branch's own plugins
    off. A file holding a comment, or none at all, gives the branch HQ's configuration alone."""
    good = loaded.effective("0755")
    assert "merchant-promo" in good.enabled_ids
    path = write("0755.toml", "")
    loaded.refresh()
    assert loaded.effective("0755") == good
    assert "the file is empty" in loaded.errors()[0].problem
    assert loaded.errors()[0].file == str(path)
    write("0755.toml", "# no local plugins for now\n")
    loaded.refresh()
    assert "merchant-promo" not in loaded.effective("0755").enabled_ids
    assert loaded.errors() == []
    write("0755.toml", "")  # now that it holds nothing, an empty file is that
    loaded.refresh()
    assert loaded.errors() == []
    (branch_dir / "0755.toml").unlink()
    loaded.refresh()
    assert "merchant-promo" not in loaded.effective("0755").enabled_ids


def test_broken_hq_edit_keeps_hq_but_branch_edits_still_apply(
    loaded: BranchConfigStore, write: Write
) -> None:
    """A broken hq.toml keeps the last good HQ in force; a valid branch edit still applies on top of it."""
    write("hq.toml", "[plugins.pension]\nrollout = 500\n")
    write("0755.toml", PROMO_0755.format(rollout=40))
    assert loaded.refresh()
    assert [p.key for p in loaded.errors()] == ["plugins.pension.rollout"]
    config = loaded.effective("0755")
    assert config.enabled_ids == ("merchant-promo", "pension", "wealth-checkup")
    assert config.plugins["wealth-checkup"].mandatory
    assert config.plugins["merchant-promo"].rollout == 40


def test_first_load_of_a_broken_branch_falls_back_to_hq(
    write: Write, hq_text: str, make_store: MakeStore
) -> None:
    """A branch whose file was never valid gets HQ's configuration, and the error is listed."""
    write("hq.toml", hq_text)
    write("021.toml", "[plugins.wealth-checkup]\nenabled = false\n")
    store = make_store()
    store.refresh()
    assert store.effective("021").enabled_ids == ("pension", "wealth-checkup")
    assert [p.key for p in store.errors()] == ["plugins.wealth-checkup.enabled"]


def test_a_plugin_not_installed_here_is_left_out_and_the_files_apply(
    write: Write, hq_text: str, make_store: MakeStore
) -> None:
    """An hq.toml naming a plugin the registry approved but this host has not installed yet (a rolling
    deployment) still applies on a fresh start, that entry left out and reported: refusing the file left
    the host running none of HQ's plugins, the mandatory one included. A branch file likewise."""
    write("hq.toml", hq_text + "\n[plugins.city-coupons]\nenabled = true\n")
    write("0755.toml", PROMO_0755.format(rollout=100) + "\n[plugins.shenzhen-perks]\nenabled = true\n")
    store = make_store()
    assert store.refresh()
    assert store.effective("021").enabled_ids == ("pension", "wealth-checkup")
    assert store.effective("0755").enabled_ids == ("merchant-promo", "pension", "wealth-checkup")
    problems = {(p.file.rsplit("/", 1)[-1], p.key): p.problem for p in store.errors()}
    assert set(problems) == {("hq.toml", "plugins.city-coupons"), ("0755.toml", "plugins.shenzhen-perks")}
    assert problems["hq.toml", "plugins.city-coupons"] == (
        "plugin 'city-coupons' is not installed on this host, so this entry is left out here and the rest "
        "of the file applies; if the registry approved it, install its approved wheel and restart the host "
        "(`fulcrum branch check` checks the entry against the registry)"
    )


def test_a_misspelt_plugin_is_left_out_naming_the_one_it_nearly_spells(
    loaded: BranchConfigStore, write: Write
) -> None:
    """A plugin id no plugin here has is reported with the installed one it nearly spells."""
    write("028.toml", "[plugins.pension]\nenabled = false\n[plugins.pensoin]\nenabled = true\n")
    assert loaded.refresh()
    assert loaded.effective("028").enabled_ids == ("wealth-checkup",)
    (problem,) = loaded.errors()
    assert problem.key == "plugins.pensoin"
    assert "not installed on this host (did you mean pension?)" in problem.problem


def test_deleting_a_branch_file_falls_back_to_hq(loaded: BranchConfigStore, branch_dir: Path) -> None:
    """Removing a branch file is a valid edit: the branch then gets HQ's configuration."""
    (branch_dir / "028.toml").unlink()
    assert loaded.refresh()
    assert loaded.branches() == ("0755",)
    assert loaded.effective("028").enabled_ids == ("pension", "wealth-checkup")


def test_deleting_hq_keeps_the_last_good_hq_and_says_so(loaded: BranchConfigStore, branch_dir: Path) -> None:
    """hq.toml vanishing (a bad deploy, a stray rm) does not switch off every mandatory plugin at once:
    the last good HQ configuration keeps serving and the problem is reported. So does one caught empty
    (an editor rewriting it in place: it switched every branch's mandatory plugins off); a file holding
    only a comment clears it."""
    before = loaded.effective("0755").enabled_ids
    (branch_dir / "hq.toml").unlink()
    loaded.refresh()
    assert loaded.effective("0755").enabled_ids == before == ("merchant-promo", "pension", "wealth-checkup")
    assert [p.line.rsplit("/", 1)[-1] for p in loaded.errors()] == [
        "hq.toml: disappeared; the last good HQ configuration keeps serving (an hq.toml holding only a "
        "comment clears it)"
    ]
    (branch_dir / "hq.toml").write_text("", encoding="utf-8")
    loaded.refresh()
    assert loaded.effective("0755").enabled_ids == before
    assert [p.line.rsplit("/", 1)[-1] for p in loaded.errors()] == [
        "hq.toml: the file is empty (read while being saved?): the last good HQ configuration keeps serving; "
        "an hq.toml holding only a comment clears it"
    ]
    (branch_dir / "hq.toml").write_text("# nothing platform-wide\n", encoding="utf-8")
    assert loaded.refresh()
    assert loaded.errors() == []
    assert loaded.effective("0755").enabled_ids == ("merchant-promo",)


def test_a_rotated_file_secret_is_read_again(write: Write, branch_dir: Path, make_store: MakeStore) -> None:
    """Rewriting a $file: secret changes no branch file; the next refresh still picks it up."""
    (branch_dir / "secrets").mkdir()
    token = branch_dir / "secrets" / "promo"
    token.write_text("v1\n", encoding="utf-8")
    write("hq.toml", "")
    settings = 'settings = { api_token = "$file:secrets/promo" }'
    write("0755.toml", f"[plugins.merchant-promo]\nenabled = true\n{settings}\n")
    store = make_store()
    assert store.refresh()
    assert store.settings_for("0755", "merchant-promo") == {"api_token": "v1"}
    token.write_text("v2-rotated\n", encoding="utf-8")
    assert store.refresh()
    assert store.settings_for("0755", "merchant-promo") == {"api_token": "v2-rotated"}
    assert not store.refresh()  # nothing changed since


def test_badly_named_file_is_reported_and_ignored(loaded: BranchConfigStore, write: Write) -> None:
    """A file that is not <code>.toml is reported, and the others keep working."""
    write("Shenzhen.toml", "")
    assert loaded.refresh()
    assert loaded.errors()[0].file.endswith("Shenzhen.toml")
    assert loaded.branches() == ("028", "0755")


def test_approval_withdrawn_keeps_last_good_and_reports(
    write: Write, hq_text: str, make_store: MakeStore, approved: dict[str, ApprovedPlugin]
) -> None:
    """When the registry withdraws an enabled plugin, the file turns invalid: reported, last good kept."""
    current = dict(approved)
    write("hq.toml", hq_text)
    write("0755.toml", PROMO_0755.format(rollout=100))
    store = make_store(provider=lambda: current)
    store.refresh()
    current["merchant-promo"] = msgspec.structs.replace(approved["merchant-promo"], versions=())
    assert store.refresh()
    assert "merchant-promo" in store.effective("0755").enabled_ids
    problems = {(p.file.rsplit("/", 1)[-1], p.key, p.problem) for p in store.errors()}
    assert (
        "0755.toml",
        "plugins.merchant-promo",
        "plugin 'merchant-promo' has no approved release",
    ) in problems


def test_unreachable_registry_keeps_serving(
    loaded: BranchConfigStore, approved: dict[str, ApprovedPlugin]
) -> None:
    """If the approved set cannot be read, nothing changes and the error is listed until it recovers."""
    failing = {"on": True}

    def provider() -> Mapping[str, ApprovedPlugin]:
        if failing["on"]:
            raise ConnectionError("registry down")
        return approved

    loaded._approved = provider  # swap the source of an already loaded store
    assert loaded.refresh() is False
    assert loaded.effective("0755").enabled_ids == ("merchant-promo", "pension", "wealth-checkup")
    assert loaded.errors()[0].problem == "cannot reload: ConnectionError: registry down"
    failing["on"] = False
    loaded.refresh()
    assert loaded.errors() == []


def test_missing_directory_is_an_error_not_a_crash(
    tmp_path: Path, approved: dict[str, ApprovedPlugin]
) -> None:
    """A store over a directory that does not exist serves nothing and says why."""
    store = BranchConfigStore(tmp_path / "nowhere", lambda: approved, {})
    assert store.refresh() is False
    assert store.effective("0755").enabled_ids == ()
    assert "cannot reload: FileNotFoundError" in store.errors()[0].problem


def test_settings_are_resolved_for_the_plugin_only(
    write: Write, hq_text: str, make_store: MakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    """The plugin's settings carry the resolved secret; errors, logs and the staff view never do."""
    caplog.set_level(logging.DEBUG, logger="fulcrum.branches")
    write("hq.toml", hq_text)
    write("0755.toml", "[plugins.merchant-promo]\nenabled = true\n")
    store = make_store()
    store.refresh()
    assert store.settings_for("0755", "merchant-promo") == {"api_token": "tok-SECRET-123", "city_list": "all"}
    assert store.settings_for("0755", "pension") == {}
    view = msgspec.json.encode(store.effective("0755").redacted()).decode()
    assert "$env:FULCRUM_SECRET_PROMO_TOKEN" in view
    assert "tok-SECRET-123" not in view
    assert not any("tok-SECRET-123" in record.getMessage() for record in caplog.records)


def test_unresolvable_secret_is_reported_and_left_out(
    write: Write, hq_text: str, make_store: MakeStore
) -> None:
    """A reference to an unset variable is listed as a problem of the file that set it; the key is omitted."""
    write("hq.toml", hq_text)
    write("0755.toml", "[plugins.merchant-promo]\nenabled = true\n")
    store = make_store(environ={})
    store.refresh()
    assert store.settings_for("0755", "merchant-promo") == {"city_list": "all"}
    assert [p.line.rsplit("/", 1)[-1] for p in store.errors()] == [
        "hq.toml: plugins.merchant-promo.settings.api_token: $env:FULCRUM_SECRET_PROMO_TOKEN is not set"
    ]


def test_background_poll_picks_up_an_edit(
    write: Write,
    hq_text: str,
    approved: dict[str, ApprovedPlugin],
    branch_dir: Path,
    inventory: dict[str, int],
) -> None:
    """With ``start()``, an edit is applied by the poller thread; ``stop()`` ends the thread."""
    calls = threading.Semaphore(0)

    def provider() -> Mapping[str, ApprovedPlugin]:
        calls.release()
        return approved

    write("hq.toml", hq_text)
    write("0755.toml", PROMO_0755.format(rollout=10))
    store = BranchConfigStore(
        branch_dir, provider, inventory, poll_interval=0.01, environ={"FULCRUM_SECRET_PROMO_TOKEN": "x"}
    )
    store.start()
    try:
        assert store.effective("0755").plugins["merchant-promo"].rollout == 10
        write("0755.toml", PROMO_0755.format(rollout=20))
        while calls.acquire(blocking=False):  # forget polls that may have begun before the edit
            pass
        # Three polls after the edit: the second read the new file, the third began after it finished.
        for _ in range(3):
            assert calls.acquire(timeout=10)
        assert store.effective("0755").plugins["merchant-promo"].rollout == 20
    finally:
        store.stop()
    assert not store._poller.running


def test_poller_survives_a_failing_poll() -> None:
    """A poll that raises is logged and the next poll still runs."""
    ran = threading.Event()
    count = {"n": 0}

    def poll() -> None:
        count["n"] += 1
        if count["n"] == 1:
            raise RuntimeError("boom")
        ran.set()

    poller = Poller(poll, interval=0.01, name="test-poller", logger=logging.getLogger("test"))
    poller.start()
    poller.start()  # idempotent
    try:
        assert ran.wait(timeout=10)
    finally:
        poller.stop()
    assert not poller.running


def test_poller_refuses_a_non_positive_interval() -> None:
    """A zero interval would spin; it is refused up front."""
    with pytest.raises(ValueError, match="interval must be positive"):
        Poller(lambda: None, interval=0, name="x", logger=logging.getLogger("test"))


def test_an_entry_that_does_nothing_is_reported_but_the_file_applies(
    loaded: BranchConfigStore, write: Write
) -> None:
    """The host applies a branch file whose entry for a plugin HQ has off omits ``enabled`` (HQ switching a
    plugin off must not leave the branch on its old configuration) and reports the entry as doing nothing."""
    text = '[plugins.merchant-promo]\nrollout = 30\n[plugins.pension]\npin = { "home.notice/v1" = 1 }\n'
    write("0755.toml", text)
    assert loaded.refresh()
    assert "merchant-promo" not in loaded.effective("0755").enabled_ids
    assert loaded.effective("0755").plugins["pension"].pin["home.notice/v1"] == 1
    lines = [p.line for p in loaded.errors()]
    assert len(lines) == 1
    assert lines[0].endswith(
        "0755.toml: plugins.merchant-promo: rollout has no effect: 'merchant-promo' is off in hq.toml and "
        "this entry does not switch it on; add `enabled = true` to give it to this branch's customers "
        "(or `enabled = false` to say it stays off)"
    )


@pytest.mark.parametrize("name", ["0755.TOML", "0755.toml.bak", "0755.tml", "hq.toml~"])
def test_a_file_the_host_does_not_read_is_reported(
    loaded: BranchConfigStore, write: Write, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A file named nearly like a branch file (case, a backup suffix, .tml) is reported and logged as not
    read, even when nothing the host reads changed; hidden files and other names are left alone."""
    write(".0755.toml.swp", "")
    write("README.md", "")
    write(name, "[plugins.pension]\nenabled = false\n")
    with caplog.at_level(logging.WARNING, logger="fulcrum.branches"):
        assert loaded.refresh()
    assert [p.line for p in loaded.errors()] == [
        f"{loaded._dir / name}: not read: the host reads only hq.toml and <code>.toml files, named in "
        "lowercase and ending in .toml exactly; rename it (e.g. 0755.toml) or move it out of the directory"
    ]
    assert name in caplog.text
    assert loaded.effective("0755").enabled_ids == ("merchant-promo", "pension", "wealth-checkup")


def test_branch_codes_no_customer_has_are_reported_when_known(
    write: Write, hq_text: str, branch_dir: Path, approved: dict[str, ApprovedPlugin],
    inventory: dict[str, int],
) -> None:
    """Given the branches customers are in, a file for another code is reported (and still applied);
    without them (a provider that cannot list its customers) nothing is said."""
    write("hq.toml", hq_text)
    write("0755.toml", "")
    write("9999.toml", "")
    env = {"FULCRUM_SECRET_PROMO_TOKEN": "t"}
    known = BranchConfigStore(branch_dir, lambda: approved, inventory, environ=env, known_branches={"0755"})
    assert known.refresh()
    assert [p.line for p in known.errors()] == [
        f"{branch_dir / '9999.toml'}: no customer of the data provider is in branch 9999, so this file "
        "applies to nobody; branches with customers: 0755"
    ]
    assert known.branches() == ("0755", "9999")
    unknown = BranchConfigStore(branch_dir, lambda: approved, inventory, environ=env)
    assert unknown.refresh()
    assert unknown.errors() == []


def test_a_settings_token_lasts_until_a_new_configuration_applies(
    loaded: BranchConfigStore, write: Write
) -> None:
    """One token per branch, the same object until a reload applies something new (even when the
    branch's own file did not change: a rotated secret or HQ's edit changes its settings too)."""
    sz, sh = loaded.settings_token("0755"), loaded.settings_token("021")
    assert loaded.settings_token("0755") is sz
    assert sh is not sz
    assert not loaded.refresh()
    assert loaded.settings_token("0755") is sz
    write("028.toml", "[plugins.pension]\nenabled = true\n")
    assert loaded.refresh()
    assert loaded.settings_token("0755") is not sz
    assert loaded.settings_token("021") is not sh


class _NoTokenSource:
    """A branch source that says nothing about how long its settings stand (no ``settings_token``)."""

    def effective(self, branch_code: str) -> Any:
        from fulcrum_core.branches.layering import layer
        from fulcrum_core.branches.model import HqFile

        return layer(branch_code, HqFile(), None)

    def settings_for(self, branch_code: str, plugin_id: str) -> Mapping[str, str]:
        return {}

    def settings_variants(self, plugin_id: str) -> tuple[Mapping[str, str], ...]:
        return ({},)


def test_request_contexts_promise_nothing_for_a_source_without_tokens(tmp_path: Path) -> None:
    """A request's settings token is the host's one without a branch layer, and ``None`` (every
    page then looks each campaign plugin up) over a branch source that gives no tokens."""
    from fulcrum_core.data.db import Database
    from fulcrum_core.dispatch.context import HOST_SETTINGS, ContextFactory
    from fulcrum_core.plugins import get_plugin_manager
    from fulcrum_core.settings import Settings
    from fulcrum_sdk.data import StaticDataProvider
    from fulcrum_sdk.testing import PERSONAS

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'f.db'}", state_dir=str(tmp_path))
    db = Database(settings.database_url)
    try:
        provider = StaticDataProvider({r.id: r for r in PERSONAS.values()})
        customer = next(iter(PERSONAS.values())).id
        plugins = get_plugin_manager(settings, load_entry_points=False)

        def token(branches: Any) -> object | None:
            factory = ContextFactory(
                settings=settings, db=db, provider=provider, plugins=plugins, branches=branches
            )
            return factory.for_request(customer, request_id="r-1").settings_token

        assert token(None) is HOST_SETTINGS
        assert token(_NoTokenSource()) is None
    finally:
        db.dispose()
