"""``GET /v1/home`` over HTTP: assembly from plugins, degraded plugins, popup caps, identity checks."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fulcrum_core.data.consents import ConsentStore
from fulcrum_core.data.impressions import ImpressionStore
from fulcrum_core.plugins import PluginPolicy
from fulcrum_core.settings import Deadlines, SlotConfig
from fulcrum_sdk.models import Targeting
from fulcrum_sdk.scopes import APP_SCOPES

SLOTS = {"home.banner/v1", "home.kingkong/v1", "home.popup/v1", "home.notice/v1"}
POPUP = "home.popup/v1"


def _keys(body: dict[str, Any], slot: str) -> list[tuple[str, str]]:
    return [(i["plugin"], i["key"]) for i in body["slots"][slot]]


def test_home_assembles_every_slot_and_lists_degraded_plugins(make_app: Any, kit: Any) -> None:
    """Good plugins fill their slots; a raising one is listed (without its error text) and the page is 200."""

    def boom(ctx: Any) -> Any:
        raise RuntimeError("secret internal detail")

    app = make_app(
        kit.plugin(
            "banners",
            home_slot_offers=lambda ctx: [
                kit.offer("home.banner", "b1", priority=300),
                kit.offer("home.kingkong", "k1"),
            ],
        ),
        kit.plugin("broken", home_slot_offers=boom),
        # Its thread must get to raise: on a loaded CI machine the default 150 ms could end it first.
        deadlines=Deadlines(home_slot_offers=5_000), home_budget_ms=10_000,
    )
    response = app.get("/v1/home")
    assert response.status_code == 200
    body = response.json()
    assert set(body["slots"]) == SLOTS
    assert _keys(body, "home.banner/v1") == [("banners", "b1")]
    assert body["slots"]["home.banner/v1"][0]["title"] == {"zh-CN": "标题 b1", "en": "Title b1"}
    assert body["degraded"] == [{"plugin": "broken", "hook": "home_slot_offers", "reason": "error"}]
    assert "secret internal detail" not in response.text
    assert body["request_id"]


def test_hanging_plugins_cost_only_the_deadline(make_app: Any, kit: Any, release: threading.Event) -> None:
    """Sync and async plugins that never answer are left out as timeouts; the page is still 200."""

    async def sleeps(ctx: Any) -> Any:
        await asyncio.sleep(3600)

    app = make_app(
        kit.plugin("good", home_slot_offers=lambda ctx: [kit.offer("home.notice", "n1")]),
        kit.plugin("stuck-thread", home_slot_offers=lambda ctx: release.wait()),
        kit.plugin("stuck-task", home_slot_offers=sleeps),
        deadlines=Deadlines(home_slot_offers=200),
    )
    body = app.get("/v1/home").json()
    assert _keys(body, "home.notice/v1") == [("good", "n1")]
    assert sorted((d["plugin"], d["reason"]) for d in body["degraded"]) == [
        ("stuck-task", "timeout"),
        ("stuck-thread", "timeout"),
    ]


def test_plugin_without_slot_scopes_is_not_called(make_app: Any, kit: Any) -> None:
    """A plugin granted no slot scope is never called for the home page."""
    calls: list[str] = []
    app = make_app(
        kit.plugin(
            "searchy",
            scopes=["search:contribute", "slot:home.banner"],
            home_slot_offers=lambda ctx: calls.append("called") or [],
        )
    )
    app.runtime.plugins.set_policy(
        {"searchy": PluginPolicy(active=True, granted_scopes=frozenset({"search:contribute"}))}
    )
    assert app.get("/v1/home").status_code == 200
    assert calls == []


def test_popup_is_frequency_capped_per_customer(make_app: Any, kit: Any) -> None:
    """The popup shows once per window for a customer, while another customer still sees it."""
    app = make_app(
        kit.plugin(
            "popper",
            home_slot_offers=lambda ctx: [kit.offer("home.popup", "pop"), kit.offer("home.banner", "b")],
        ),
        home_budget_ms=10_000,  # a busy machine's stalled loop must not read as a store that did not answer
    )
    first = app.get("/v1/home").json()
    second = app.get("/v1/home").json()
    other = app.get("/v1/home", token=app.token("synthetic-retiree")).json()
    assert _keys(first, "home.popup/v1") == [("popper", "pop")]
    assert second["slots"]["home.popup/v1"] == []
    assert _keys(second, "home.banner/v1") == [("popper", "b")]
    assert _keys(other, "home.popup/v1") == [("popper", "pop")]


def test_impression_store_failure_hides_the_popup_only(
    make_app: Any, kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the cap cannot be checked, the popup is withheld and the rest of the page is served."""

    def down(self: Any, *args: Any) -> int:
        raise ConnectionError("impressions away")

    monkeypatch.setattr(ImpressionStore, "count_since", down)
    app = make_app(
        kit.plugin(
            "popper",
            home_slot_offers=lambda ctx: [kit.offer("home.popup", "pop"), kit.offer("home.banner", "b")],
        )
    )
    response = app.get("/v1/home")
    assert response.status_code == 200
    assert response.json()["slots"]["home.popup/v1"] == []
    assert _keys(response.json(), "home.banner/v1") == [("popper", "b")]


def test_two_concurrent_pages_show_a_once_a_day_popup_at_most_once(
    make_app: Any, kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app opens and asks for the home page twice at once: both pages read the cap before either
    records its impression. The popup is still shown at most once in the window, every impression
    recorded was shown, and a popup neither page showed is shown by the next one."""
    count = ImpressionStore.count_since
    both_read = threading.Barrier(2)
    reads: list[int] = []

    def read_together(self: ImpressionStore, *args: Any) -> int:
        reads.append(1)
        if len(reads) <= 2:  # the two pages' first reads of the cap meet here
            with contextlib.suppress(threading.BrokenBarrierError):
                both_read.wait(timeout=2)
        return count(self, *args)

    app = make_app(
        kit.plugin("popper", home_slot_offers=lambda ctx: [kit.offer("home.popup", "pop")]),
        home_budget_ms=10_000,
    )
    token = app.token()
    monkeypatch.setattr(ImpressionStore, "count_since", read_together)
    with ThreadPoolExecutor(2) as pool:
        pages = list(pool.map(lambda _: app.get("/v1/home", token=token), range(2)))
    monkeypatch.setattr(ImpressionStore, "count_since", count)
    assert all(p.status_code == 200 for p in pages)
    shown = sum(len(p.json()["slots"]["home.popup/v1"]) for p in pages)
    since = datetime.now(UTC) - timedelta(days=1)
    assert shown <= 1
    assert ImpressionStore(app.runtime.db).count_since("synthetic-young-professional", POPUP, since) == shown
    assert len(app.get("/v1/home", token=token).json()["slots"]["home.popup/v1"]) == 1 - shown


def test_suspended_plugin_disappears_on_the_next_request(make_app: Any, kit: Any) -> None:
    """Switching a plugin off through the policy takes effect without restart."""
    app = make_app(kit.plugin("flaky", home_slot_offers=lambda ctx: [kit.offer("home.banner", "b")]))
    assert _keys(app.get("/v1/home").json(), "home.banner/v1") == [("flaky", "b")]
    app.runtime.plugins.set_policy({"flaky": PluginPolicy(active=False, granted_scopes=frozenset())})
    assert app.get("/v1/home").json()["slots"]["home.banner/v1"] == []


def test_partner_plugin_sees_only_a_pairwise_id(make_app: Any, kit: Any) -> None:
    """Over HTTP a partner plugin receives a pseudonymous id, never the customer number."""
    seen: list[str] = []
    app = make_app(
        kit.plugin("partner", kind="partner", home_slot_offers=lambda ctx: seen.append(ctx.customer.id) or [])
    )
    assert app.get("/v1/home").status_code == 200
    assert len(seen) == 1
    assert len(seen[0]) == 64
    assert "synthetic" not in seen[0]


def test_a_partner_cannot_target_by_profile_data_the_customer_has_not_shared(make_app: Any, kit: Any) -> None:
    """Offers a partner targets by segment or branch are shown only once the customer consented to
    ``profile:basic``: otherwise showing them would tell the partner (through a tap on the offer) what
    the customer did not share. Untargeted and locale-targeted offers are shown either way."""
    offers = [
        kit.offer("home.banner", "mass", targeting=Targeting(segments=frozenset({"mass"}))),
        kit.offer("home.banner", "shenzhen", targeting=Targeting(branches=frozenset({"0755"}))),
        kit.offer("home.banner", "chinese", targeting=Targeting(locales=frozenset({"zh-CN"}))),
        kit.offer("home.banner", "everyone"),
    ]
    app = make_app(
        kit.plugin("partner", kind="partner", scopes=["slot:home.banner"], optional=["profile:basic"],
                   home_slot_offers=lambda ctx: offers),
        slots={"home.banner/v1": SlotConfig(capacity=5, per_plugin=5)}, consent_cache_ms=0,
    )
    assert _keys(app.get("/v1/home").json(), "home.banner/v1") == [
        ("partner", "chinese"), ("partner", "everyone"),
    ]
    later = datetime.now(UTC) + timedelta(days=30)
    consents = ConsentStore(app.runtime.db)
    consents.grant("synthetic-young-professional", "partner", ["profile:basic"], "排序", later)
    assert _keys(app.get("/v1/home").json(), "home.banner/v1") == [
        ("partner", "chinese"), ("partner", "everyone"), ("partner", "mass"), ("partner", "shenzhen"),
    ]


def test_request_id_header_is_used_when_well_formed(make_app: Any) -> None:
    """A well-formed X-Request-ID is echoed; a malformed one is replaced."""
    app = make_app()
    assert app.get("/v1/home", headers={"X-Request-ID": "abc-123"}).json()["request_id"] == "abc-123"
    replaced = app.get("/v1/home", headers={"X-Request-ID": "bad id <script>"}).json()["request_id"]
    assert replaced != "bad id <script>"
    assert replaced


@pytest.mark.parametrize(
    ("sub", "kind", "scopes", "status"),
    [
        ("synthetic-affluent", "customer", ["search:read"], 403),  # lacks home:read
        ("nobody-we-know", "customer", None, 403),  # no profile at the bank
        ("ops-staff", "staff", ["home:read"], 403),  # not a customer token
    ],
)
def test_home_refuses_wrong_callers(
    make_app: Any, sub: str, kind: str, scopes: list[str] | None, status: int
) -> None:
    """Missing scope, unknown customer and non-customer tokens are 403 problems."""
    app = make_app()
    token = app.token(sub, scopes if scopes is not None else APP_SCOPES, kind=kind)
    response = app.get("/v1/home", token=token)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")


def test_home_without_token_is_401(make_app: Any) -> None:
    """No bearer token: 401."""
    assert make_app().client.get("/v1/home").status_code == 401
