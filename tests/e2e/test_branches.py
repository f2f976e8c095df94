"""The shipped branch configuration end to end: the demo with the repository's ``branches/`` directory.

``branches/`` turns merchant promotions on for 0755 at 100 % (pinned second in the banner), for 021
at 30 % by a stable hash, and off for 028. Only customers who consented to merchant offers can see
them at all, so every customer below has consent (028's are granted here, so that "off" is visibly
the branch configuration and not a missing consent).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fulcrum_core.app import build_runtime, create_app
from fulcrum_core.branches import in_rollout
from fulcrum_core.data.consents import ConsentStore
from fulcrum_core.demo import prepare_demo
from fulcrum_core.settings import Deadlines, Settings
from fulcrum_sdk.scopes import APP_SCOPES
from litestar.testing import TestClient

from .conftest import NOW, Demo

REPO_BRANCHES = Path(__file__).resolve().parents[2] / "branches"
PROMO = "merchant-promo"
BANNER = "home.banner/v1"
SZ = ["c-0755-001", "c-0755-002", "c-0755-003", "c-0755-004"]
SH = ["c-021-001", "c-021-002", "c-021-003", "c-021-004"]
CD = ["c-028-001", "c-028-002", "c-028-003"]


@pytest.fixture
def branch_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Demo]:
    """The demo on the repository's branches/ directory, with merchant-offer consent for 028 too."""
    settings = Settings(
        state_dir=str(tmp_path / "state"),
        database_url=f"sqlite:///{tmp_path / 'fulcrum.db'}",
        pairwise_secret="e2e-pairwise-secret",
        branches_dir=str(REPO_BRANCHES),
        # What is under test is who gets a plugin, not latency: generous deadlines keep a loaded
        # machine from dropping a slow plugin and passing that off as a branch decision.
        deadlines=Deadlines(home_slot_offers=10_000),
        home_budget_ms=20_000,
        data_budget_ms=10_000,
    )
    prepare_demo(settings)
    runtime = build_runtime(settings)
    consents = ConsentStore(runtime.db)
    for customer in CD:
        consents.grant(
            customer, PROMO, frozenset({"location:city", "profile:basic"}),
            purpose="本地商户优惠推荐 / local merchant offers", expires_at=NOW + timedelta(days=365),
        )
    for_request = runtime.contexts.for_request

    def pinned(customer_ref: str, *, request_id: str, now: datetime | None = None, **rest: Any) -> Any:
        return for_request(customer_ref, request_id=request_id, now=NOW, **rest)

    monkeypatch.setattr(runtime.contexts, "for_request", pinned)
    with TestClient(create_app(settings, runtime=runtime)) as client:
        yield Demo(client, runtime)


def _banner(demo: Demo, customer: str) -> list[str]:
    home = demo.get(customer, "/v1/home")
    assert home["degraded"] == [], home["degraded"]
    return [item["plugin"] for item in home["slots"][BANNER]]


def test_shenzhen_customers_all_see_the_merchant_banner_second(branch_demo: Demo) -> None:
    """Every consenting 0755 customer gets merchant offers, the first of them pinned at position 2."""
    for customer in SZ:
        banner = _banner(branch_demo, customer)
        assert PROMO in banner, customer
        assert banner[1] == PROMO, (customer, banner)


def test_shanghai_customers_follow_the_stable_thirty_percent(branch_demo: Demo) -> None:
    """021 customers see merchant offers exactly when their stable bucket is inside the 30 % rollout."""
    inside = [c for c in SH if in_rollout(c, PROMO, 30)]
    outside = [c for c in SH if not in_rollout(c, PROMO, 30)]
    assert inside  # the seed has customers on both sides
    assert outside
    for customer in inside:
        assert PROMO in _banner(branch_demo, customer), customer
    for customer in outside:
        assert PROMO not in _banner(branch_demo, customer), customer


def test_chengdu_customers_see_no_merchant_banner_even_with_consent(branch_demo: Demo) -> None:
    """028 switched merchant promotions off: consent or bucket makes no difference."""
    assert any(in_rollout(c, PROMO, 30) for c in CD)
    for customer in CD:
        banner = _banner(branch_demo, customer)
        assert PROMO not in banner, customer
        assert "wealth-checkup" in banner  # HQ's mandatory plugin is there


def test_a_customers_result_is_stable_across_requests(branch_demo: Demo) -> None:
    """Asking again gives each customer the same merchant decision: no flicker."""
    for customer in [*SZ[:1], *SH, *CD[:1]]:
        first = PROMO in _banner(branch_demo, customer)
        assert all((PROMO in _banner(branch_demo, customer)) == first for _ in range(3)), customer


def test_admin_view_of_the_shipped_files(branch_demo: Demo) -> None:
    """Staff see 021's rollout of 30 from the branch file and 028's merchant switch off from it."""
    token = branch_demo.runtime.tokens.issue("ops-wang", ["branch:read"], kind="staff")
    headers = {"Authorization": f"Bearer {token}"}
    sh = branch_demo.client.get("/admin/v1/branches/021/effective", headers=headers).json()
    cd = branch_demo.client.get("/admin/v1/branches/028/effective", headers=headers).json()
    promo_sh = next(p for p in sh["plugins"] if p["id"] == PROMO)
    promo_cd = next(p for p in cd["plugins"] if p["id"] == PROMO)
    assert promo_sh["rollout"] == {"value": 30, "source": "branch"}
    assert promo_cd["enabled"] == {"value": False, "source": "branch"}
    wealth = next(p for p in cd["plugins"] if p["id"] == "wealth-checkup")
    assert wealth["mandatory"] is True
    customer = branch_demo.runtime.tokens.issue("c-028-001", APP_SCOPES)
    as_customer = {"Authorization": f"Bearer {customer}"}
    refused = branch_demo.client.get("/admin/v1/branches/021/effective", headers=as_customer)
    assert refused.status_code == 403
    assert branch_demo.client.get("/readyz").json() == {"status": "ready"}


def test_the_shipped_files_have_no_problems_in_the_running_demo(branch_demo: Demo) -> None:
    """The demo host loads the shipped files cleanly against the plugins the registry approved."""
    store = branch_demo.runtime.extras["branches"]
    store.refresh()  # against the approved set as it stands now the registry's policy is applied
    assert store.errors() == []
    assert store.branches() == ("021", "028", "0755")


def test_a_settings_token_stands_for_every_plugins_settings_in_a_branch(branch_demo: Demo) -> None:
    """Customers of one branch share a settings token and get the same settings for every plugin;
    another branch has another token; a reload that applies a new configuration gives new tokens,
    one that changes nothing keeps them (what the campaign store keeps pages' answers under)."""
    runtime = branch_demo.runtime
    plugins = list(runtime.plugins.loaded.values())

    def contexts(customer: str) -> Any:
        return runtime.contexts.for_request(customer, request_id="r-token")

    sz = [contexts(c) for c in SZ]
    assert all(c.settings_token is sz[0].settings_token for c in sz)
    for plugin in plugins:
        assert all(c.settings_of(plugin) == sz[0].settings_of(plugin) for c in sz)
    sh = contexts(SH[0])
    assert sh.settings_token is not sz[0].settings_token
    assert sh.settings_token is not None
    source = runtime.contexts.branches
    assert source is not None
    assert not source.refresh()
    assert contexts(SZ[1]).settings_token is sz[0].settings_token
