"""``GET /v1/pages/{plugin}/{path}``: a plugin's own screen, drawn for the customer, scoped and guarded."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import pytest
from fulcrum_core.api.pages import _page_path
from fulcrum_core.data.consents import ConsentStore
from fulcrum_core.errors import BadRequest
from fulcrum_core.plugins import PluginPolicy
from fulcrum_core.settings import Deadlines
from fulcrum_sdk import Action, Page, PageLine, PageSection, ScopeDenied
from fulcrum_sdk.errors import NO_CONSENT

CUSTOMER = "synthetic-young-professional"


def _page(kit: Any, title: str = "我的页面") -> Page:
    return Page(
        title=kit.text(title, "My page"),
        sections=(PageSection(key="main", title=kit.text("概要"), lines=(
            PageLine(label=kit.text("余额"), value=kit.text("¥1.00"), action=Action(uri="fulcrum://p/more")),
        )),),
    )


def _server(kit: Any, plugin_id: str = "pager", **kwargs: Any) -> Any:
    seen: list[str] = []

    def page(ctx: Any, path: str) -> Page | None:
        seen.append(path)
        return _page(kit, f"页面 {path}") if path in ("report", "products/WM-001") else None

    plugin = kit.plugin(plugin_id, page=page, **kwargs)
    plugin.seen = seen
    return plugin


def test_a_page_is_drawn_by_its_plugin_with_the_path_after_the_id(make_app: Any, kit: Any) -> None:
    """The plugin gets the deep link's path; the response carries the validated page and who drew it."""
    plugin = _server(kit)
    app = make_app(plugin)
    response = app.get("/v1/pages/pager/products/WM-001")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["plugin"] == "pager"
    assert body["path"] == "products/WM-001"
    assert body["page"]["title"] == {"zh-CN": "页面 products/WM-001", "en": "My page"}
    assert body["page"]["sections"][0]["lines"][0]["action"] == {"uri": "fulcrum://p/more"}
    assert body["request_id"]
    assert plugin.seen == ["products/WM-001"]


def test_no_page_at_the_path_is_404_naming_path(make_app: Any, kit: Any) -> None:
    """``None`` from the plugin is a 404 naming ``path``."""
    response = make_app(_server(kit)).get("/v1/pages/pager/nowhere")
    assert response.status_code == 404
    assert response.json()["field"] == "path"
    assert response.json()["code"] == "page.not-found"


@pytest.mark.parametrize(
    "plugin_id", ["nobody", "feeder"],  # not installed; installed but without the page hook
)
def test_a_plugin_without_pages_is_404_naming_plugin(make_app: Any, kit: Any, plugin_id: str) -> None:
    """An unknown plugin and one that draws no pages are both 404 naming ``plugin``."""
    app = make_app(_server(kit), kit.plugin("feeder", feed_items=lambda ctx, column: []))
    response = app.get(f"/v1/pages/{plugin_id}/report")
    assert response.status_code == 404
    assert response.json()["field"] == "plugin"


def test_a_plugin_switched_off_draws_nothing(make_app: Any, kit: Any) -> None:
    """A suspended plugin (or one off for this customer's branch) is 404, and is not called."""
    plugin = _server(kit)
    app = make_app(plugin)
    app.runtime.plugins.set_policy({"pager": PluginPolicy(active=False, granted_scopes=frozenset())})
    assert app.get("/v1/pages/pager/report").status_code == 404
    assert plugin.seen == []


@pytest.mark.parametrize(
    "path", ["a%2F..%2Freport", "re%20port", "-report", "x" * 201, "report%00", "%E6%8A%A5%E5%91%8A"],
)
def test_malformed_paths_are_400_naming_path(make_app: Any, kit: Any, path: str) -> None:
    """Dot segments (even percent-encoded), spaces, NULs, non-ASCII and over-long paths never reach
    the plugin."""
    plugin = _server(kit)
    response = make_app(plugin).get(f"/v1/pages/pager/{path}")
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "path"
    assert plugin.seen == []


def test_a_refused_path_is_named_as_the_client_sent_it(make_app: Any, kit: Any) -> None:
    """The 400 detail quotes the path after the plugin id, without a slash the client never sent."""
    response = make_app(_server(kit)).get("/v1/pages/pager/%E5%85%BB")
    assert response.status_code == 400, response.text
    assert response.json()["detail"].endswith("got '养'")


@pytest.mark.parametrize("path", ["/a/../report", "/./report", "/report/..", "/", "//", "/.."])
def test_paths_with_dot_segments_or_nothing_are_refused(path: str) -> None:
    """What an HTTP client would normalise away is refused too, if it ever arrives."""
    with pytest.raises(BadRequest) as info:
        _page_path(path)
    assert info.value.field == "path"


@pytest.mark.parametrize(
    ("sent", "path"),
    [
        ("report/", "report"), ("products//WM-001", "products/WM-001"),
        ("products%2FWM%2D001%2F", "products/WM-001"),
    ],
)
def test_a_path_is_read_as_the_router_reads_it(make_app: Any, kit: Any, sent: str, path: str) -> None:
    """The path arrives percent-decoded; slashes at either end do not count and repeated ones are one,
    over HTTP (the router's reading) and in the route's own check alike: the conformance kit judges
    deep links by the same rule."""
    plugin = _server(kit)
    response = make_app(plugin).get(f"/v1/pages/pager/{sent}")
    assert response.status_code == 200, response.text
    assert response.json()["path"] == path
    assert _page_path(f"/{unquote(sent)}") == path


def test_a_path_keeps_its_case() -> None:
    """Product ids in deep links are upper case; the plugin gets the path as written."""
    assert _page_path("/products/WM-001") == "products/WM-001"


def test_a_plugin_that_raises_is_503_naming_it(make_app: Any, kit: Any) -> None:
    """A failing page is a 503 problem naming the plugin, without the exception's text."""

    def page(ctx: Any, path: str) -> Page:
        raise RuntimeError("secret internals")

    response = make_app(kit.plugin("broken", page=page)).get("/v1/pages/broken/report")
    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "page.unavailable"
    assert body["plugin"] == "broken"
    assert "secret internals" not in response.text
    assert response.headers["retry-after"] == "1"


@pytest.mark.parametrize(
    "garbage", [["not", "a", "page"], {"title": "x"}, "page"],
)
def test_a_plugin_returning_garbage_is_503(make_app: Any, kit: Any, garbage: Any) -> None:
    """Anything but a Page or None is refused like an exception."""
    response = make_app(kit.plugin("junk", page=lambda ctx, path: garbage)).get("/v1/pages/junk/report")
    assert response.status_code == 503
    assert response.json()["plugin"] == "junk"


def test_an_invalid_page_is_503(make_app: Any, kit: Any) -> None:
    """A Page breaking its own constraints (too many sections) is checked as the host checks any result."""
    big = Page(title=kit.text("大"), sections=tuple(
        PageSection(key=f"s{i}", title=kit.text("节")) for i in range(21)
    ))
    response = make_app(kit.plugin("big", page=lambda ctx, path: big)).get("/v1/pages/big/report")
    assert response.status_code == 503


def test_a_hanging_async_page_answers_503_within_its_deadline(make_app: Any, kit: Any) -> None:
    """A coroutine that never returns costs the request the page deadline, not more."""

    async def page(ctx: Any, path: str) -> Page:
        await asyncio.sleep(60)
        raise AssertionError("unreachable")

    app = make_app(kit.plugin("slow", page=page), deadlines=Deadlines(page=200))
    started = time.monotonic()
    response = app.get("/v1/pages/slow/report")
    assert response.status_code == 503
    assert time.monotonic() - started < 5
    assert "timeout" in response.json()["detail"]


def test_a_hanging_sync_page_answers_503_within_its_deadline(
    make_app: Any, kit: Any, release: threading.Event
) -> None:
    """A plain function blocked in its worker thread is abandoned at the deadline."""

    def page(ctx: Any, path: str) -> Page:
        release.wait(30)
        return _page(kit)

    app = make_app(kit.plugin("stuck", page=page), deadlines=Deadlines(page=200))
    started = time.monotonic()
    assert app.get("/v1/pages/stuck/report").status_code == 503
    assert time.monotonic() - started < 5


def test_repeated_failures_open_the_breaker_and_stop_the_calls(make_app: Any, kit: Any) -> None:
    """The page hook has its own breaker: once open, the plugin is not called and the answer is 503."""
    calls: list[str] = []

    def page(ctx: Any, path: str) -> Page:
        calls.append(path)
        raise RuntimeError("down")

    app = make_app(kit.plugin("flaky", page=page))
    for _ in range(40):
        assert app.get("/v1/pages/flaky/report").status_code == 503
    assert app.runtime.dispatcher.breaker_open("flaky", "page")
    before = len(calls)
    response = app.get("/v1/pages/flaky/report")
    assert response.status_code == 503
    assert "rejected" in response.json()["detail"]
    assert len(calls) == before


def test_a_partner_page_needs_the_customers_consent(make_app: Any, kit: Any) -> None:
    """Reading data the customer has not consented to is a 403 ``consent.required`` naming the scope
    (the app can ask for it), not a failure charged to the plugin; once consented, the page is drawn."""

    def page(ctx: Any, path: str) -> Page:
        city = ctx.data.city()
        return _page(kit, city.name.zh_CN if city else "?")

    app = make_app(kit.plugin("partner", kind="partner", scopes=["location:city"], page=page))
    refused = app.get("/v1/pages/partner/report")
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "consent.required"
    assert refused.json()["missing_scopes"] == ["location:city"]
    assert not app.runtime.dispatcher.breaker_open("partner", "page")
    (stat,) = [s for s in app.runtime.dispatcher.stats.snapshot() if s.plugin == "partner"]
    assert (stat.ok, stat.error) == (1, 0)  # the plugin did nothing wrong

    later = datetime.now(UTC) + timedelta(days=30)
    ConsentStore(app.runtime.db).grant(CUSTOMER, "partner", ["location:city"], "本地优惠", later)
    drawn = app.get("/v1/pages/partner/report")
    assert drawn.status_code == 200, drawn.text
    assert drawn.json()["page"]["title"]["zh-CN"] == "深圳"


def test_a_page_needs_the_pages_read_scope(make_app: Any, kit: Any) -> None:
    """A customer token without ``pages:read`` is refused before any plugin runs."""
    plugin = _server(kit)
    app = make_app(plugin)
    response = app.get("/v1/pages/pager/report", token=app.token(scopes=["home:read"]))
    assert response.status_code == 403
    assert response.json()["missing_scopes"] == ["pages:read"]
    assert plugin.seen == []


def test_the_page_route_is_documented(make_app: Any, kit: Any) -> None:
    """The OpenAPI document has the route with its scope and its 404 and 503 answers."""
    spec = make_app().client.get("/schema/openapi.json").json()
    operation = spec["paths"]["/v1/pages/{plugin}/{path}"]["get"]
    assert set(operation["responses"]) >= {"200", "400", "401", "403", "404", "503"}
    assert operation["security"] == [{"oauth2": ["pages:read"]}]



@pytest.mark.parametrize("scope", ["holdings:read", "location:city", "slot:home.banner"])
def test_a_consent_error_the_plugin_makes_up_is_its_own_fault(make_app: Any, kit: Any, scope: str) -> None:
    """A page raising "no live consent" itself for a scope it was not granted (holdings), one the customer
    did consent to (city) or one that is not customer data gets a 503, never a consent prompt."""

    def page(ctx: Any, path: str) -> Page:
        raise ScopeDenied(scope, plugin_id="partner", reason=NO_CONSENT)

    granted = ["location:city", "slot:home.banner"]
    app = make_app(kit.plugin("partner", kind="partner", scopes=granted, page=page))
    later = datetime.now(UTC) + timedelta(days=30)
    ConsentStore(app.runtime.db).grant(CUSTOMER, "partner", ["location:city"], "本地优惠", later)
    response = app.get("/v1/pages/partner/report")
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "page.unavailable"
    (stat,) = [s for s in app.runtime.dispatcher.stats.snapshot() if s.plugin == "partner"]
    assert (stat.ok, stat.error) == (0, 1)  # charged to its breaker like any fault


def test_the_links_query_reaches_the_plugin_read_only(make_app: Any, kit: Any) -> None:
    """``?part=allocation&x=1`` is handed to the plugin as a read-only mapping (the last of a repeated
    name wins); a page without query parameters gets an empty one."""
    seen: list[Any] = []

    def page(ctx: Any, path: str, query: Any) -> Page:
        seen.append(query)
        return _page(kit)

    app = make_app(kit.plugin("pager", page=page))
    assert app.get("/v1/pages/pager/report?part=mix&part=allocation&x=1").status_code == 200
    assert app.get("/v1/pages/pager/report").status_code == 200
    assert dict(seen[0]) == {"part": "allocation", "x": "1"}
    assert dict(seen[1]) == {}
    with pytest.raises(TypeError):
        seen[0]["part"] = "changed"


@pytest.mark.parametrize(
    "query",
    [
        "bad%20name=1", "a=" + "x" * 201, "a=%01",
        "&".join(f"k{i}=1" for i in range(21)), "&".join(["a=1"] * 21),  # 21 names; one name 21 times
    ],
)
def test_a_query_the_host_cannot_pass_on_is_400_naming_query(make_app: Any, kit: Any, query: str) -> None:
    """Odd names, long or unprintable values and too many parameters never reach the plugin."""
    plugin = _server(kit)
    response = make_app(plugin).get(f"/v1/pages/pager/report?{query}")
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "query"
    assert plugin.seen == []


def _consented_partner_whose_consents_cannot_be_read(
    make_app: Any, kit: Any, monkeypatch: pytest.MonkeyPatch, page: Any
) -> Any:
    """An app with a partner granted ``location:city`` and ``page``, whose customer consented to it,
    and a consent store that cannot be read from now on."""
    app = make_app(kit.plugin("partner", kind="partner", scopes=["location:city"], page=page))
    later = datetime.now(UTC) + timedelta(days=30)
    ConsentStore(app.runtime.db).grant(CUSTOMER, "partner", ["location:city"], "本地优惠", later)

    def down(self: ConsentStore, customer_ref: str, at: datetime) -> list[Any]:
        raise ConnectionError("database away")

    monkeypatch.setattr(ConsentStore, "_live", down)
    return app


def test_a_consent_that_could_not_be_read_is_no_consent_prompt(
    make_app: Any, kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the customer's consents could not be read in time, a page stopping for want of consent to
    granted customer data is a 503 ``customer.data_unavailable`` (retry), never a prompt to consent to
    what the customer may well have consented to already, nor charged to the plugin."""

    def page(ctx: Any, path: str) -> Page:  # stops without asking ``allows`` (which would raise)
        raise ScopeDenied("location:city", plugin_id="partner", reason=NO_CONSENT)

    app = _consented_partner_whose_consents_cannot_be_read(make_app, kit, monkeypatch, page)
    response = app.get("/v1/pages/partner/report")
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "customer.data_unavailable"
    (stat,) = [s for s in app.runtime.dispatcher.stats.snapshot() if s.plugin == "partner"]
    assert stat.error == 0  # the bank's consents were late, not the plugin


def test_a_page_guarded_by_allows_is_not_told_no_while_consents_are_unknown(
    make_app: Any, kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partner page following the guide (``if not ctx.data.allows(scope)``: ask the customer to
    consent) never tells a customer who did consent to go and consent when the consents could not be
    read: ``allows`` raises ``DataUnavailable``, and the app gets the 503 to retry, the plugin not charged."""

    def page(ctx: Any, path: str) -> Page:
        return _page(kit, "请先授权" if not ctx.data.allows("location:city") else "深圳")

    app = _consented_partner_whose_consents_cannot_be_read(make_app, kit, monkeypatch, page)
    response = app.get("/v1/pages/partner/report")
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "customer.data_unavailable"
    assert "plugin" not in response.json()
    assert not app.runtime.dispatcher.breaker_open("partner", "page")


def test_customer_data_that_did_not_arrive_is_no_fault_of_the_page(
    make_app: Any, kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page reading customer data the bank could not give in time (here: consents unread) gets the
    documented 503 ``customer.data_unavailable`` without ``plugin``, not a failure naming the plugin."""

    def page(ctx: Any, path: str) -> Page:
        city = ctx.data.city()
        return _page(kit, city.name.zh_CN if city else "?")

    app = make_app(kit.plugin("partner", kind="partner", scopes=["location:city"], page=page))

    def down(self: ConsentStore, customer_ref: str, at: datetime) -> list[Any]:
        raise ConnectionError("database away")

    monkeypatch.setattr(ConsentStore, "_live", down)
    response = app.get("/v1/pages/partner/report")
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "customer.data_unavailable"
    assert "plugin" not in response.json()
    assert response.headers["retry-after"] == "1"
    assert not app.runtime.dispatcher.breaker_open("partner", "page")


def test_the_consent_prompt_and_the_plugin_failure_are_documented(make_app: Any, kit: Any) -> None:
    """The 403 ``consent.required`` (naming ``plugin`` and ``missing_scopes``) and the 503 naming
    ``plugin`` are in the OpenAPI document as sent, not only a token's missing scope."""
    spec = make_app().client.get("/schema/openapi.json").json()
    responses = spec["paths"]["/v1/pages/{plugin}/{path}"]["get"]["responses"]
    schemas = spec["components"]["schemas"]

    def members(status: str) -> set[str]:
        ref = responses[status]["content"]["application/problem+json"]["schema"]["$ref"]
        return set(schemas[ref.rsplit("/", 1)[1]]["properties"])

    assert "consent.required" in responses["403"]["description"]
    assert {"code", "plugin", "missing_scopes"} <= members("403")
    assert {"code", "plugin"} <= members("503")
