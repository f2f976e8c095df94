"""Verify before import: a host obeying the registry imports an installed plugin only when that version
was approved and its files are the approved wheel's. Real wheels, installed by uv, whose module body
writes a marker file: the marker says whether the plugin's import-time code ran."""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from fulcrum_core.app import build_runtime
from fulcrum_core.data.db import Database
from fulcrum_core.registry_host import registry_of
from fulcrum_core.registry_host.host import open_registry
from fulcrum_core.runtime import Runtime
from fulcrum_core.settings import Settings
from fulcrum_registry import RegistryService

from tests.registry.old_rules import file_under_old_rules

from .conftest import CHECKLIST, make_wheel, publish

UV = shutil.which("uv")
pytestmark = pytest.mark.skipif(UV is None, reason="uv is not on PATH; it installs the wheels")


class Installed(msgspec.Struct):
    """One plugin built into a wheel and installed on ``sys.path``; ``marker`` appears if it was imported."""

    plugin_id: str
    wheel: Path
    site: Path
    marker: Path

    @property
    def module(self) -> Path:
        return self.site / ("fulcrum_" + self.plugin_id.replace("-", "_")) / "__init__.py"


def _install(wheel: Path, target: Path) -> None:
    """Install with uv, copying files (its default hard links would let a test edit uv's cache)."""
    assert UV is not None
    done = subprocess.run(
        [UV, "pip", "install", "--quiet", "--no-deps", "--link-mode", "copy", "--no-cache",
         "--target", str(target), str(wheel)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.fixture
def install(kit: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Installed]:
    """``install(plugin_id, code="", **manifest)``: build its wheel (the module body writes the marker,
    then runs ``code``), install it, and put it on ``sys.path`` so its ``fulcrum`` entry point is found."""

    def build(plugin_id: str, code: str = "", **manifest_keys: Any) -> Installed:
        marker = tmp_path / f"{plugin_id}.imported"
        body = f"from pathlib import Path\nPath({str(marker)!r}).write_text('import-time code ran')\n" + code
        manifest_keys.setdefault("hooks", ["home_slot_offers"])
        manifest_keys.setdefault("scopes", ["slot:home.notice"])
        manifest = kit.manifest(plugin_id, **manifest_keys)
        wheel = make_wheel(tmp_path / f"wheel-{plugin_id}", manifest, module=body.encode())
        site = tmp_path / f"site-{plugin_id}"
        _install(wheel, site)
        monkeypatch.syspath_prepend(str(site))
        return Installed(plugin_id, wheel, site, marker)

    return build


@pytest.fixture
def service(settings: Settings, migrated_sqlite: Path) -> Iterator[RegistryService]:
    """The registry on the settings' (migrated) database, as reviewers use it before the host starts."""
    shutil.copyfile(migrated_sqlite, settings.resolved_database_url().split("///", 1)[1])
    db = Database(settings.resolved_database_url())
    yield open_registry(settings, db)
    db.dispose()


@pytest.fixture
def host(settings: Settings) -> Iterator[Callable[..., Runtime]]:
    """``host(**settings)``: the host as ``fulcrum serve`` builds it (entry points, obeying the registry)."""
    built: list[Runtime] = []

    def build(**overrides: Any) -> Runtime:
        runtime = build_runtime(msgspec.structs.replace(settings, **overrides))
        built.append(runtime)
        return runtime

    yield build
    for runtime in built:
        runtime.dispatcher.close()
        runtime.db.dispose()


def _approve(service: RegistryService, wheel: Path) -> int:
    release = publish(service, wheel)
    assert release.state == "in_review", release.failed_checks
    assert service.approve(release.id, reviewer="bob", checklist=CHECKLIST).state == "approved"
    return int(release.id)


def test_the_approved_copy_is_imported_and_runs(
    install: Callable[[str], Installed], service: RegistryService, host: Callable[..., Runtime]
) -> None:
    """The control: an untouched approved wheel is imported (its module body runs) and runs."""
    plugin = install("gate-approved")
    _approve(service, plugin.wheel)
    runtime = host()
    assert plugin.marker.exists()
    assert "gate-approved" in runtime.plugins.loaded
    watcher = registry_of(runtime).watcher
    assert watcher is not None
    watcher.refresh(force=True)
    assert runtime.plugins.is_active("gate-approved")


def test_a_copy_tampered_after_approval_is_never_imported(
    install: Callable[[str], Installed], service: RegistryService, host: Callable[..., Runtime]
) -> None:
    """Edited after approval: its import-time code never runs, and the quarantine names the file."""
    plugin = install("gate-tampered")
    _approve(service, plugin.wheel)
    plugin.module.write_text(plugin.module.read_text() + "# tampered after approval\n")
    runtime = host()
    assert not plugin.marker.exists()
    reason = runtime.plugins.quarantined["gate-tampered"]
    assert "fulcrum_gate_tampered/__init__.py differs from the approved wheel" in reason, reason
    assert "gate-tampered" not in runtime.plugins.loaded


@pytest.mark.parametrize(
    ("submit", "expected"),
    [(False, "unknown to the registry"), (True, "installed version 1.0.0 is in_review in the registry")],
)
def test_an_unapproved_plugin_is_never_imported(
    install: Callable[[str], Installed],
    service: RegistryService,
    host: Callable[..., Runtime],
    submit: bool,
    expected: str,
) -> None:
    """Unknown to the registry, or submitted and not approved: not imported, quarantined saying why."""
    plugin = install(f"gate-unapproved-{int(submit)}")
    if submit:
        publish(service, plugin.wheel)
    runtime = host()
    assert not plugin.marker.exists()
    assert expected in runtime.plugins.quarantined[plugin.plugin_id]


_OFFER = """
from fulcrum_sdk import Action, LocalizedText, SlotOffer, hookimpl

@hookimpl
def home_slot_offers(ctx):
    return [SlotOffer(slot="home.notice/v1", key="late-notice", priority=500,
                      title=LocalizedText(zh_CN="迟到的通知", en="A late notice"),
                      action=Action(uri="fulcrum://open/late-notice"))]
"""


def _readyz(client: Any) -> Any:
    return client.get("/readyz")


def test_a_registry_that_cannot_be_read_imports_nothing_until_a_poll_reads_it(
    install: Callable[[str], Installed], host: Callable[..., Runtime], settings: Settings
) -> None:
    """An unmigrated database: nothing can be verified, so nothing is imported (fail closed) and
    /readyz is 503; once the database is migrated and the release approved, the next poll imports the
    plugin, switches it on (its offer is on /v1/home) and the worker turns ready, without a restart."""
    from fulcrum_core.app import create_app
    from fulcrum_sdk.scopes import APP_SCOPES
    from litestar.testing import TestClient

    plugin = install("gate-no-registry", _OFFER)
    runtime = host(registry_poll_seconds=3600)
    assert not plugin.marker.exists()
    assert "cannot read the registry" in runtime.plugins.quarantined["gate-no-registry"]
    watcher = registry_of(runtime).watcher
    assert watcher is not None
    with TestClient(create_app(runtime.settings, runtime=runtime)) as client:
        response = _readyz(client)
        assert response.status_code == 503, response.text
        assert any("registry could not be read" in r for r in response.json()["reasons"]), response.text
        runtime.db.upgrade()
        _approve(open_registry(settings, runtime.db), plugin.wheel)
        assert not plugin.marker.exists()  # nothing is imported between polls
        watcher.refresh()
        assert plugin.marker.exists()
        assert runtime.plugins.is_active("gate-no-registry")
        assert "gate-no-registry" not in runtime.plugins.quarantined
        response = _readyz(client)
        assert response.status_code == 200, response.text
        customer = next(iter(runtime.provider.records))  # type: ignore[attr-defined]
        token = runtime.tokens.issue(customer, APP_SCOPES)
        home = client.get("/v1/home", headers={"Authorization": f"Bearer {token}"})
    assert home.status_code == 200, home.text
    assert "late-notice" in home.text, home.text


_TX_TYPE = """
import msgspec
from fulcrum_sdk import TransactionType

class Params(msgspec.Struct, frozen=True):
    amount_fen: int

@hookimpl
def register_transaction_types(register):
    register(TransactionType(key="late.buy", name=LocalizedText(zh_CN="买", en="Buy"), params=Params,
                             risk_level="R1", amount_field="amount_fen"))

@hookimpl
def execute_transaction(ctx, request):
    raise RuntimeError("not called in this test")
"""


def test_a_release_approved_after_startup_is_imported_on_the_next_poll(
    install: Callable[..., Installed], service: RegistryService, host: Callable[..., Runtime]
) -> None:
    """In review at startup: held back unimported; approved later: the next poll imports it, registers
    its hooks and transaction type, and the policy switches it on."""
    hooks = ["home_slot_offers", "register_transaction_types", "execute_transaction"]
    declared = {"late.buy": {"risk_level": "R1", "amount_field": "amount_fen"}}
    plugin = install("gate-late", _OFFER + _TX_TYPE, hooks=hooks, transaction_types=declared)
    release = publish(service, plugin.wheel)
    assert release.state == "in_review", release.failed_checks
    runtime = host()
    watcher = registry_of(runtime).watcher
    assert watcher is not None
    watcher.refresh(force=True)
    assert not plugin.marker.exists()
    assert "in_review" in runtime.plugins.quarantined["gate-late"]
    service.approve(release.id, reviewer="bob", checklist=CHECKLIST)
    watcher.refresh()
    assert not plugin.marker.exists()  # one reviewer of two agreed: still held, never imported
    assert service.approve(release.id, reviewer="dave", checklist=CHECKLIST).state == "approved"
    assert watcher.refresh()
    assert plugin.marker.exists()
    assert runtime.plugins.is_active("gate-late")
    assert [p.id for p in runtime.plugins.enabled_for("home_slot_offers")] == ["gate-late"]
    assert runtime.plugins.transaction_types["late.buy"][0].id == "gate-late"
    assert "gate-late" not in runtime.plugins.held


def test_a_copy_tampered_before_a_late_admission_is_never_imported(
    install: Callable[[str], Installed], host: Callable[..., Runtime], settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Registry unreadable at startup, then the release approved: the poll verifies the installed copy
    first, finds the edited file, and keeps it out for good; its import-time code never runs. The log
    says the fix once."""
    plugin = install("gate-late-tampered")
    plugin.module.write_text(plugin.module.read_text() + "# tampered before the registry was read\n")
    runtime = host()
    runtime.db.upgrade()
    service = open_registry(settings, runtime.db)
    release_id = _approve(service, plugin.wheel)
    watcher = registry_of(runtime).watcher
    assert watcher is not None
    watcher.refresh()
    reason = runtime.plugins.quarantined["gate-late-tampered"]
    assert "differs from the approved wheel" in reason, reason
    [line] = [r.getMessage() for r in caplog.records if "held back for good" in r.getMessage()]
    assert line.count("fix:") == 1, line
    assert line.endswith("; fix: reinstall the approved wheel, then restart the worker"), line
    service.suspend(release_id, actor="carol", reason="a policy change")
    service.resume(release_id, actor="dave", reason="another one")
    assert watcher.refresh()
    assert not plugin.marker.exists()
    assert "gate-late-tampered" not in runtime.plugins.loaded
    assert runtime.plugins.enabled_for("home_slot_offers") == []


def test_a_suspended_release_is_imported_but_off_and_can_be_resumed(
    install: Callable[[str], Installed], service: RegistryService, host: Callable[..., Runtime]
) -> None:
    """Suspension is reversible without restart: the reviewed copy is imported, its hooks stay off."""
    plugin = install("gate-suspended")
    release_id = _approve(service, plugin.wheel)
    service.suspend(release_id, actor="carol", reason="incident 7")
    runtime = host()
    assert plugin.marker.exists()
    watcher = registry_of(runtime).watcher
    assert watcher is not None
    watcher.refresh(force=True)
    assert "suspended" in runtime.plugins.inactive["gate-suspended"]
    service.resume(release_id, actor="dave", reason="fixed")
    watcher.refresh()
    assert runtime.plugins.is_active("gate-suspended")


def test_a_suspended_release_tampered_with_is_never_imported(
    install: Callable[[str], Installed], service: RegistryService, host: Callable[..., Runtime]
) -> None:
    plugin = install("gate-suspended-tampered")
    release_id = _approve(service, plugin.wheel)
    service.suspend(release_id, actor="carol", reason="incident 8")
    plugin.module.write_text(plugin.module.read_text() + "# tampered\n")
    runtime = host()
    assert not plugin.marker.exists()
    assert "differs from the approved wheel" in runtime.plugins.quarantined["gate-suspended-tampered"]


def test_dev_mode_still_imports_a_plugin_unknown_to_the_registry(
    install: Callable[[str], Installed], service: RegistryService, host: Callable[..., Runtime]
) -> None:
    """Development mode keeps today's behaviour: a developer's unregistered plugin loads and runs."""
    plugin = install("gate-dev")
    runtime = host(dev_mode=True)
    assert plugin.marker.exists()
    assert "gate-dev" in runtime.plugins.loaded


def test_a_late_admitted_plugin_that_fails_to_import_is_quarantined_once(
    install: Callable[[str], Installed], service: RegistryService, host: Callable[..., Runtime]
) -> None:
    """Approved after startup but raising at import: quarantined naming the failure, the worker keeps
    serving, and later polls do not import it again."""
    plugin = install("gate-late-broken", "raise RuntimeError('broken at import')\n")
    release = publish(service, plugin.wheel)
    runtime = host()
    watcher = registry_of(runtime).watcher
    assert watcher is not None
    watcher.refresh(force=True)
    assert service.approve(release.id, reviewer="bob", checklist=CHECKLIST).state == "approved"
    watcher.refresh()
    assert plugin.marker.exists()
    reason = runtime.plugins.quarantined["gate-late-broken"]
    assert "import failed: RuntimeError: broken at import" in reason, reason
    assert "gate-late-broken" not in runtime.plugins.held
    plugin.marker.unlink()
    service.suspend(release.id, actor="carol", reason="a policy change")
    assert watcher.refresh()
    assert not plugin.marker.exists()
    assert "gate-late-broken" not in runtime.plugins.loaded


class _Clock:
    """The watcher's clock, moved by hand: a poll happens when the test calls ``refresh``."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Contents:
    """``RegistryService.release_contents`` failing its first ``failures`` calls (a database error
    while reading the release), then reading; ``calls`` counts the full verifications."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, failures: int) -> None:
        from fulcrum_registry import RegistryUnavailable

        self.calls = 0
        real = RegistryService.release_contents

        def contents(service: RegistryService, release_id: int) -> dict[str, str]:
            self.calls += 1
            if self.calls <= failures:
                raise RegistryUnavailable("database error: could not read the release")
            return real(service, release_id)

        monkeypatch.setattr(RegistryService, "release_contents", contents)


def _watching(runtime: Runtime) -> tuple[Any, _Clock]:
    watcher = registry_of(runtime).watcher
    assert watcher is not None
    clock = _Clock()
    watcher.clock = clock
    return watcher, clock


def test_a_transient_verification_failure_is_retried_without_a_registry_change(
    install: Callable[[str], Installed],
    service: RegistryService,
    host: Callable[..., Runtime],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The release could not be read at startup nor on the first poll: with the registry unchanged, a
    later poll (one interval on) asks again, verifies the copy, imports it and switches it on."""
    plugin = install("gate-flaky")
    _approve(service, plugin.wheel)
    contents = _Contents(monkeypatch, failures=2)
    runtime = host(registry_poll_seconds=1.0)
    watcher, clock = _watching(runtime)
    assert watcher.refresh()
    assert "cannot verify the installed copy" in runtime.plugins.quarantined["gate-flaky"]
    version = watcher.version
    clock.now = 0.5
    assert not watcher.refresh()  # not due yet: not asked
    assert (contents.calls, plugin.marker.exists()) == (2, False)
    clock.now = 1.0
    assert watcher.refresh()
    assert watcher.version == version == service.policy_version()  # no registry change was needed
    assert plugin.marker.exists()
    assert runtime.plugins.is_active("gate-flaky")
    assert "gate-flaky" not in runtime.plugins.quarantined
    assert "gate-flaky" not in runtime.plugins.held


def test_a_permanent_verification_failure_is_asked_less_and_less_often(
    install: Callable[[str], Installed],
    service: RegistryService,
    host: Callable[..., Runtime],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Over 16 polls a release that never reads is verified on polls 0, 1, 3, 7 and 15 (the wait
    doubles), and the log says each time why the plugin is held and when it is asked next."""
    plugin = install("gate-unreadable")
    _approve(service, plugin.wheel)
    contents = _Contents(monkeypatch, failures=10**6)
    runtime = host(registry_poll_seconds=1.0)
    watcher, clock = _watching(runtime)
    logger = logging.getLogger("fulcrum.registry")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="fulcrum.registry")
    asked: list[int] = []
    try:
        for poll in range(16):
            clock.now = float(poll)
            before = contents.calls
            watcher.refresh()
            if contents.calls > before:
                asked.append(poll)
    finally:
        logger.removeHandler(caplog.handler)
    assert asked == [0, 1, 3, 7, 15]
    assert not plugin.marker.exists()
    status = watcher.held_status()["gate-unreadable"]
    assert (status.checks, status.next_check) == (5, 15.0 + 16.0)
    assert "could not read the release" in status.reason
    assert "plugin 'gate-unreadable' held back (check 5): cannot verify" in caplog.text, caplog.text
    assert "next check in 16 s" in caplog.text, caplog.text


def test_a_registry_change_asks_a_held_plugin_at_once(
    install: Callable[[str], Installed],
    service: RegistryService,
    host: Callable[..., Runtime],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Deep in its backoff, a held plugin is still asked on the first poll after a registry change."""
    plugin = install("gate-changed")
    release_id = _approve(service, plugin.wheel)
    contents = _Contents(monkeypatch, failures=4)
    runtime = host(registry_poll_seconds=1.0)
    watcher, clock = _watching(runtime)
    for now in (0.0, 1.0, 3.0):
        clock.now = now
        watcher.refresh()
    assert contents.calls == 4  # startup, then polls 0, 1 and 3; the next one is due at 7
    clock.now = 4.0
    service.suspend(release_id, actor="carol", reason="a policy change")
    assert watcher.refresh()
    assert contents.calls == 5
    assert plugin.marker.exists()  # the reviewed copy of a suspended release: imported, its hooks off
    assert "suspended" in runtime.plugins.inactive["gate-changed"]


def test_a_tampered_copy_stays_out_however_often_it_is_asked(
    install: Callable[[str], Installed],
    service: RegistryService,
    host: Callable[..., Runtime],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Polls and registry changes never import a copy found not to be the reviewed one, nor verify
    it again; its quarantine keeps naming the file and it has no next check."""
    plugin = install("gate-tampered-often")
    release_id = _approve(service, plugin.wheel)
    plugin.module.write_text(plugin.module.read_text() + "# tampered after approval\n")
    contents = _Contents(monkeypatch, failures=0)
    runtime = host(registry_poll_seconds=1.0)
    watcher, clock = _watching(runtime)
    for poll in range(20):
        clock.now = float(poll)
        if poll == 10:
            service.suspend(release_id, actor="carol", reason="a policy change")
            service.resume(release_id, actor="dave", reason="another one")
        watcher.refresh()
    assert contents.calls == 1
    assert not plugin.marker.exists()
    reason = runtime.plugins.quarantined["gate-tampered-often"]
    assert "fulcrum_gate_tampered_often/__init__.py differs from the approved wheel" in reason, reason
    assert watcher.held_status()["gate-tampered-often"].next_check is None


def test_plugins_view_says_why_a_plugin_is_held_and_when_it_is_asked_next(
    install: Callable[[str], Installed],
    service: RegistryService,
    host: Callable[..., Runtime],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``GET /v1/plugins`` lists each held-back plugin with its reason, checks and next check time."""
    from datetime import UTC, datetime, timedelta

    from fulcrum_core.app import create_app
    from litestar.testing import TestClient

    plugin = install("gate-shown")
    _approve(service, plugin.wheel)
    _Contents(monkeypatch, failures=10**6)
    runtime = host(registry_poll_seconds=3600)
    _watching(runtime)
    token = runtime.tokens.issue("ops-1", ["platform:read"], kind="staff")
    with TestClient(create_app(runtime.settings, runtime=runtime)) as client:  # startup polls once
        body = client.get("/v1/plugins", headers={"Authorization": f"Bearer {token}"}).json()
    held = {h["id"]: h for h in body["held"]}["gate-shown"]
    assert "could not read the release" in held["reason"]
    assert (held["checks"], held["next_check"]) == (1, "scheduled")
    next_at = datetime.fromisoformat(held["next_check_at"])
    assert timedelta(minutes=59) < next_at - datetime.now(UTC) <= timedelta(hours=1)


def test_in_dev_mode_a_copy_unverifiable_for_a_moment_runs_on_a_later_poll(
    install: Callable[[str], Installed],
    service: RegistryService,
    host: Callable[..., Runtime],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Imported unchecked (dev mode), then its release could not be read on the first poll: it stays
    off until a later poll verifies it, with the registry unchanged."""
    plugin = install("gate-dev-flaky")
    _approve(service, plugin.wheel)
    contents = _Contents(monkeypatch, failures=1)
    runtime = host(dev_mode=True, registry_poll_seconds=1.0)
    watcher, clock = _watching(runtime)
    assert watcher.refresh()
    assert "cannot verify the installed copy" in runtime.plugins.inactive["gate-dev-flaky"]
    clock.now = 0.5
    assert not watcher.refresh()
    assert contents.calls == 1
    clock.now = 1.0
    assert watcher.refresh()
    assert watcher.version == service.policy_version()
    assert runtime.plugins.is_active("gate-dev-flaky")


def test_releases_filed_under_older_rules_are_left_out_and_every_other_plugin_runs(
    install: Callable[[str], Installed], service: RegistryService, host: Callable[..., Runtime],
    settings: Settings, kit: Any, wheel_for: Callable[..., Path], caplog: pytest.LogCaptureFixture,
) -> None:
    """Two approved releases whose stored manifests today's rules refuse (one installed here, its name
    holding a bidi override; one not, its id holding ``--``) made the registry unreadable, so no plugin
    was imported. Now neither runs, the log names each once with the key and problem, and the other
    installed plugin is imported and runs."""
    good = install("gate-good")
    aged = install("gate-aged")
    _approve(service, good.wheel)
    aged_id = _approve(service, aged.wheel)
    hyphens_id = _approve(service, wheel_for(kit.manifest("gate-hyphens", hooks=["home_slot_offers"],
                                                          scopes=["slot:home.notice"])))
    db = Database(settings.resolved_database_url())
    file_under_old_rules(db.engine, aged_id, name={"zh-CN": "优惠\u202e券", "en": "Coupons"})
    file_under_old_rules(db.engine, hyphens_id, id="gate--hyphens")
    db.dispose()
    runtime = host()
    watcher = registry_of(runtime).watcher
    assert watcher is not None
    watcher.refresh(force=True)
    watcher.refresh(force=True)
    assert good.marker.exists()
    assert runtime.plugins.is_active("gate-good")
    assert not aged.marker.exists()
    assert "gate-aged" not in runtime.plugins.loaded
    reason = runtime.plugins.quarantined["gate-aged"]
    assert f"release {aged_id} (gate-aged 1.0.0) was approved, but its manifest fails today's rules" in reason
    assert "(name.zh-CN: U+202E RIGHT-TO-LEFT OVERRIDE at index 2 is not allowed in display text)" in reason
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("left out of the policy:")]
    assert len([line for line in said if f"release {hyphens_id} (gate--hyphens 1.0.0)" in line]) == 1, said
    assert len([line for line in said if f"release {aged_id} (gate-aged 1.0.0)" in line]) == 1, said
    assert "with no two hyphens in a row" in "".join(said), said
