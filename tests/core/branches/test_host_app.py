"""The branch layer in the running host: who gets which plugin, settings, pins, admin view, readiness,
hot reload and transactions, through the real app with test plugins and the SDK's personas.

Personas: young professional (branch 0755), young family (021), retiree (028).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from fulcrum_core.branches.host import branch_store_of
from fulcrum_core.branches.store import BranchConfigStore
from fulcrum_core.plugins import PluginPolicy
from fulcrum_core.settings import Deadlines
from fulcrum_sdk.models import LocalizedText, TransactionRequest, TransactionResult, TransactionType
from fulcrum_sdk.testing import PERSONAS

SZ = PERSONAS["young_professional"].id  # 0755
SH = PERSONAS["young_family"].id  # 021
CD = PERSONAS["retiree"].id  # 028
BANNER = "home.banner/v1"
SECRET = "s3cr3t-token-value"

HQ = """
[plugins.alpha]
mandatory = true
settings = { greeting = "hq-hello" }
"""
BRANCH_021 = """
[plugins.beta]
enabled = true
pin = { "home.banner/v1" = 1 }
settings = { api_token = "$env:FULCRUM_SECRET_BETA_TOKEN", city = "shanghai" }

[plugins.alpha]
settings = { greeting = "021-hello" }
"""


class Recorder:
    """The settings each plugin saw, per customer."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], dict[str, str]] = {}


# The test plugins are plain functions, run in worker threads: deadlines a loaded machine cannot make
# them miss, since these tests assert which plugins a branch turns on, not time.
_PATIENT: dict[str, Any] = {
    "deadlines": Deadlines(home_slot_offers=10_000, search=10_000, feed_items=10_000),
    "home_budget_ms": 20_000,
}


def _plugins(kit: Any, recorder: Recorder) -> list[Any]:
    def offers(plugin_id: str, priority: int) -> Callable[..., Any]:
        def home_slot_offers(ctx: Any) -> list[Any]:
            recorder.seen[(plugin_id, ctx.customer.id)] = dict(ctx.settings)
            return [kit.offer("home.banner", f"{plugin_id}-1", priority=priority)]

        return home_slot_offers

    return [
        kit.plugin("alpha", home_slot_offers=offers("alpha", 500)),
        kit.plugin("beta", home_slot_offers=offers("beta", 1)),
        kit.plugin("gamma", home_slot_offers=offers("gamma", 900)),  # named in no file: off
    ]


@pytest.fixture
def branches(tmp_path: Path) -> Path:
    """A branch directory: alpha mandatory at HQ, beta enabled and pinned first by 021."""
    directory = tmp_path / "host-branches"
    directory.mkdir()
    (directory / "hq.toml").write_text(HQ, encoding="utf-8")
    (directory / "021.toml").write_text(BRANCH_021, encoding="utf-8")
    return directory


@pytest.fixture
def recorder() -> Recorder:
    """Records the settings plugins see."""
    return Recorder()


@pytest.fixture
def app(
    make_app: Callable[..., Any],
    kit: Any,
    branches: Path,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    """The real app with alpha, beta and gamma, on the ``branches`` directory (no background polling)."""
    monkeypatch.setenv("FULCRUM_SECRET_BETA_TOKEN", SECRET)
    # What is under test is which plugins each branch's customers get, not latency: on a loaded machine
    # the default 150 ms would leave a plugin's thread out at random (timing: tests/core/test_chaos.py).
    return make_app(
        *_plugins(kit, recorder), branches_dir=str(branches), branches_poll_seconds=3600, **_PATIENT
    )


def _banner(app: Any, customer: str) -> list[str]:
    response = app.get("/v1/home", token=app.token(customer))
    assert response.status_code == 200, response.text
    return [item["plugin"] for item in response.json()["slots"][BANNER]]


def _store(app: Any) -> BranchConfigStore:
    store = branch_store_of(app.runtime)
    assert store is not None
    return store


def _staff(app: Any, scopes: tuple[str, ...] = ("branch:read",)) -> str:
    return app.token("ops-lin", list(scopes), kind="staff")


def test_each_branch_gets_its_plugins_and_unnamed_ones_stay_off(app: Any) -> None:
    """021 gets alpha and beta (beta pinned first); 0755 and 028 get alpha only; gamma runs for nobody."""
    assert _banner(app, SH) == ["beta", "alpha"]
    assert _banner(app, SZ) == ["alpha"]
    assert _banner(app, CD) == ["alpha"]


def test_plugins_receive_layered_settings_with_secrets_resolved(app: Any, recorder: Recorder) -> None:
    """A plugin's ctx.settings holds the branch's value over HQ's, and the secret reference resolved."""
    _banner(app, SH)
    _banner(app, SZ)
    assert recorder.seen[("beta", SH)] == {"api_token": SECRET, "city": "shanghai"}
    assert recorder.seen[("alpha", SH)] == {"greeting": "021-hello"}
    assert recorder.seen[("alpha", SZ)] == {"greeting": "hq-hello"}
    assert ("beta", SZ) not in recorder.seen


def test_admin_view_shows_provenance_and_redacts_secrets(app: Any) -> None:
    """The effective view says where each value came from and shows the reference, never the secret."""
    response = app.get("/admin/v1/branches/021/effective", token=_staff(app))
    assert response.status_code == 200, response.text
    assert SECRET not in response.text
    plugins = {p["id"]: p for p in response.json()["plugins"]}
    token_ref = {"value": "$env:FULCRUM_SECRET_BETA_TOKEN", "source": "branch"}
    assert plugins["beta"]["settings"]["api_token"] == token_ref
    assert plugins["beta"]["pin"][BANNER] == {"value": 1, "source": "branch"}
    assert plugins["alpha"]["mandatory"] is True
    assert plugins["alpha"]["enabled"] == {"value": True, "source": "default"}
    assert plugins["alpha"]["settings"]["greeting"] == {"value": "021-hello", "source": "branch"}
    assert "gamma" not in plugins


def test_admin_view_refuses_unknown_branches_and_missing_scopes(app: Any) -> None:
    """Unknown code → 404 naming the field; no branch:read → 403; a customer token → 403."""
    unknown = app.get("/admin/v1/branches/9999/effective", token=_staff(app))
    assert unknown.status_code == 404
    assert unknown.json()["field"] == "code"
    wrong_scope = _staff(app, ("platform:read",))
    assert app.get("/admin/v1/branches/021/effective", token=wrong_scope).status_code == 403
    assert app.get("/admin/v1/branches/021/effective", token=app.token(SH)).status_code == 403
    assert app.client.get("/admin/v1/branches/021/effective").status_code == 401


def test_admin_list_names_configured_branches(app: Any) -> None:
    """The list shows each branch with a file and its digest, and no problems for valid files."""
    body = app.get("/admin/v1/branches", token=_staff(app)).json()
    assert [b["code"] for b in body["branches"]] == ["021"]
    assert body["problems"] == []


def test_broken_edit_keeps_last_good_config_and_shows_in_readyz(
    app: Any, branches: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An invalid edit changes nothing customers see; /readyz stays 200 and lists it; so does the log."""
    assert app.client.get("/readyz").json() == {"status": "ready"}
    (branches / "021.toml").write_text(BRANCH_021.replace("enabled = true", "enabled = true\nrollout = 130"))
    with caplog.at_level("WARNING", logger="fulcrum.branches"):
        assert _store(app).refresh()
    assert _banner(app, SH) == ["beta", "alpha"]
    ready = app.client.get("/readyz")
    assert ready.status_code == 200
    [warning] = ready.json()["warnings"]
    assert "021.toml" in warning
    assert "plugins.beta.rollout: 130 is out of range" in warning
    assert any("plugins.beta.rollout" in r.getMessage() for r in caplog.records)
    assert SECRET not in ready.text
    assert SECRET not in caplog.text


def test_unresolvable_secret_is_reported_without_its_value(app: Any, branches: Path) -> None:
    """An edit pointing the credential at an unset variable: a /readyz warning naming the reference
    (never a value), and the plugin keeps the credential it had, so the edit cannot leave it without."""
    edit = BRANCH_021.replace("FULCRUM_SECRET_BETA_TOKEN", "FULCRUM_SECRET_UNSET_TOKEN")
    (branches / "021.toml").write_text(edit, encoding="utf-8")
    store = _store(app)
    assert store.refresh()
    ready = app.client.get("/readyz")
    warnings = ready.json()["warnings"]
    assert any("$env:FULCRUM_SECRET_UNSET_TOKEN is not set; the last good value keeps serving" in w
               for w in warnings)
    assert SECRET not in ready.text
    assert store.settings_for("021", "beta") == {"api_token": SECRET, "city": "shanghai"}
    assert "beta" in _banner(app, SH)


def test_rollout_zero_with_allow_list_admits_only_pilots(app: Any, branches: Path) -> None:
    """rollout = 0 keeps beta from 021's customers except the allow-listed pilot."""
    other = PERSONAS["business_owner"].id  # also 021
    text = BRANCH_021.replace("enabled = true", f'enabled = true\nrollout = 0\nallow = ["{other}"]')
    (branches / "021.toml").write_text(text, encoding="utf-8")
    assert _store(app).refresh()
    assert "beta" not in _banner(app, SH)
    assert "beta" in _banner(app, other)


def test_a_version_range_matching_no_release_is_refused(app: Any, branches: Path) -> None:
    """A range the installed 1.0.0 misses is refused (no approved release): the last good config stays.

    A range that admits it applies, and the plugin stays on.
    """
    edit = BRANCH_021.replace("enabled = true", 'enabled = true\nversion = ">=2"')
    (branches / "021.toml").write_text(edit)
    assert _store(app).refresh()
    assert _banner(app, SH) == ["beta", "alpha"]  # the edit is invalid: last good config
    assert any("matches no approved release" in p.line for p in _store(app).errors())
    edit = BRANCH_021.replace("enabled = true", 'enabled = true\nversion = "~=1.0"')
    (branches / "021.toml").write_text(edit)
    assert _store(app).refresh()
    assert _store(app).errors() == []
    assert _banner(app, SH) == ["beta", "alpha"]


def test_switching_a_plugin_off_applies_on_refresh(app: Any, branches: Path) -> None:
    """A valid edit takes effect on the next request after a reload, without a restart."""
    (branches / "021.toml").write_text(BRANCH_021.replace("enabled = true", "enabled = false"))
    assert _store(app).refresh()
    assert _banner(app, SH) == ["alpha"]


def test_hot_reload_by_the_poller(
    make_app: Callable[..., Any], kit: Any, branches: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a short poll interval a running app picks up an edit by itself, within a bounded wait."""
    monkeypatch.setenv("FULCRUM_SECRET_BETA_TOKEN", SECRET)
    app = make_app(
        *_plugins(kit, Recorder()), branches_dir=str(branches), branches_poll_seconds=0.02, **_PATIENT
    )
    assert "beta" in _banner(app, SH)
    generation = _store(app).generation
    (branches / "021.toml").write_text(BRANCH_021.replace("enabled = true", "enabled = false"))
    deadline = time.monotonic() + 10
    while _store(app).generation == generation and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _store(app).generation > generation
    assert _banner(app, SH) == ["alpha"]


def test_no_branch_directory_means_every_active_plugin_runs(
    make_app: Callable[..., Any], kit: Any, tmp_path: Path
) -> None:
    """Without a branch directory there is no branch layer: gamma runs, the admin view says so (404)."""
    app = make_app(*_plugins(kit, Recorder()), branches_dir=str(tmp_path / "absent"), **_PATIENT)
    assert branch_store_of(app.runtime) is None
    assert set(_banner(app, CD)) == {"alpha", "beta", "gamma"}
    response = app.get("/admin/v1/branches", token=_staff(app))
    assert response.status_code == 404
    assert response.json()["code"] == "branch.no-configuration"
    assert app.client.get("/readyz").json() == {"status": "ready"}


# --- transactions ---------------------------------------------------------------------------------------


class PayParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Parameters of ``beta.pay``."""

    amount_fen: int


def _paying_beta(kit: Any) -> Any:
    def register_transaction_types(register: Callable[[TransactionType], None]) -> None:
        register(TransactionType(
            key="beta.pay", name=LocalizedText(zh_CN="支付", en="Pay"),
            description=LocalizedText(zh_CN="测试支付"), params=PayParams, risk_level="R1",
            amount_field="amount_fen",
        ))

    def execute_transaction(ctx: Any, request: TransactionRequest) -> TransactionResult:
        return TransactionResult(status="succeeded", reference="PAY-1")

    return kit.plugin("beta", transaction_types=["beta.pay"],
                      register_transaction_types=register_transaction_types,
                      execute_transaction=execute_transaction)


def test_a_plugin_off_for_the_customers_branch_cannot_execute(
    make_app: Callable[..., Any], kit: Any, tmp_path: Path
) -> None:
    """beta.pay is listed and runs for a 021 customer; for 0755 it is not listed, 403, nothing journaled."""
    directory = tmp_path / "pay-branches"
    directory.mkdir()
    (directory / "021.toml").write_text("[plugins.beta]\nenabled = true\n", encoding="utf-8")
    app = make_app(_paying_beta(kit), branches_dir=str(directory), branches_poll_seconds=3600)
    assert _store(app).errors() == []
    body = msgspec.json.encode({"type": "beta.pay", "params": {"amount_fen": 100}})

    def post(customer: str, key: str) -> Any:
        headers = {"Authorization": f"Bearer {app.token(customer)}", "Idempotency-Key": key,
                   "Content-Type": "application/json"}
        return app.client.post("/v1/transactions", content=body, headers=headers)

    listed = {c: [t["key"] for t in app.get("/v1/transaction-types", token=app.token(c)).json()["items"]]
              for c in (SH, SZ)}
    assert listed == {SH: ["beta.pay"], SZ: []}
    assert post(SH, "k-sh").status_code == 201
    refused = post(SZ, "k-sz")
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "transaction.plugin_not_enabled"
    assert refused.json()["field"] == "type"
    assert app.runtime.transactions.journal.find(SZ, "fulcrum-dev", "k-sz") is None


def test_search_and_feeds_follow_the_branch_configuration(
    make_app: Callable[..., Any], kit: Any, tmp_path: Path
) -> None:
    """Search and feed columns call only the plugins the customer's branch gives them, like the home page."""
    branches = tmp_path / "content-branches"
    branches.mkdir()
    (branches / "hq.toml").write_text("[plugins.alpha]\nmandatory = true\n", encoding="utf-8")
    (branches / "021.toml").write_text("[plugins.beta]\nenabled = true\n", encoding="utf-8")
    plugins = [
        kit.plugin(pid, search=lambda ctx, query, pid=pid: [kit.hit(f"{pid}-hit")],
                   feed_items=lambda ctx, column, pid=pid: [kit.item(column, f"{pid}-card")])
        for pid in ("alpha", "beta", "gamma")
    ]
    app = make_app(*plugins, branches_dir=str(branches), branches_poll_seconds=3600, **_PATIENT)
    assert _store(app).errors() == []

    def found(customer: str) -> tuple[set[str], set[str]]:
        hits = app.get("/v1/search", token=app.token(customer), params={"q": "x"}).json()["items"]
        cards = app.get("/v1/feeds/wealth", token=app.token(customer)).json()["items"]
        return {h["key"] for h in hits}, {c["key"] for c in cards}

    assert found(SH) == ({"alpha-hit", "beta-hit"}, {"alpha-card", "beta-card"})
    assert found(CD) == ({"alpha-hit"}, {"alpha-card"})


def test_a_file_for_a_branch_no_customer_has_is_a_readyz_warning(app: Any, branches: Path) -> None:
    """A data provider that holds its customers (the demo, the tests) knows their branches: 0775.toml, a typo
    for 0755, is applied but named on /readyz as a file for no customer, with the code it may have meant."""
    (branches / "0775.toml").write_text("", encoding="utf-8")
    assert _store(app).refresh()
    [warning] = app.client.get("/readyz").json()["warnings"]
    assert warning == (
        f"branches: {branches / '0775.toml'}: no customer of the data provider is in branch 0775, so this "
        "file applies to nobody (did you mean 0755?); branches with customers: 021, 028, 0755"
    )


def test_readyz_gives_the_registrys_reason_for_a_plugin_it_stopped(app: Any) -> None:
    """The installed release suspended while an older one stays approved: /readyz said "has no approved
    release", which is false; it gives the registry's reason, as /v1/plugins does."""
    reason = "installed version 1.0.0 is suspended in the registry (approved: 0.9.0)"
    app.runtime.plugins.set_policy({
        "alpha": PluginPolicy(active=False, granted_scopes=frozenset(), reason=reason),
        "beta": PluginPolicy(active=True, granted_scopes=frozenset({"slot:home.banner"})),
    })
    _store(app).refresh()
    warnings = app.client.get("/readyz").json()["warnings"]
    assert any(w.endswith(f"plugins.alpha: plugin 'alpha' is not approved here: {reason}") for w in warnings)
    assert not any("has no approved release" in w for w in warnings)
