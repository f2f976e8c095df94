"""The same plugin through the SDK's ``PluginHarness`` and through the host: what a partner or a
department sees and gets back must agree, so a plugin green in its own tests works on the platform."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fulcrum_core.data.consents import ConsentStore
from fulcrum_sdk import Page, PageLine, PageSection
from fulcrum_sdk.testing import PluginHarness

CUSTOMER = "synthetic-young-professional"


def _customer_page(kit: Any) -> Any:
    """A page showing the customer as the plugin's context shows them."""

    def page(ctx: Any, path: str) -> Page:
        seen = f"{ctx.customer.segment or '-'}/{ctx.customer.branch or '-'}"
        return Page(title=kit.text(seen), sections=(
            PageSection(key="main", title=kit.text("客户"), lines=(
                PageLine(label=kit.text("语言"), value=kit.text(ctx.customer.locale)),
            )),
        ))

    return page


def _host_title(app: Any) -> str:
    response = app.get("/v1/pages/shop/report")
    assert response.status_code == 200, response.text
    title: str = response.json()["page"]["title"]["zh-CN"]
    return title


@pytest.mark.parametrize(("kind", "consented", "shown"), [
    ("department", None, "mass/0755"),
    ("partner", None, "mass/0755"),
    ("partner", (), "-/-"),  # no consent to profile:basic: no segment, no branch
])
def test_the_customer_a_plugin_sees_is_the_same(
    make_app: Any, kit: Any, kind: str, consented: tuple[str, ...] | None, shown: str
) -> None:
    """``ctx.customer``'s segment and branch: a partner sees them only with the customer's consent to
    ``profile:basic``, in the harness as on the host."""
    plugin = kit.plugin("shop", kind=kind, scopes=["profile:basic"], page=_customer_page(kit))
    harness = PluginHarness(plugin, manifest=plugin.MANIFEST, persona="young_professional",
                            consented=consented)
    drawn = harness.page("report")
    assert drawn is not None
    app = make_app(plugin, consent_cache_ms=0)
    if kind == "partner" and consented is None:
        later = datetime.now(UTC) + timedelta(days=30)
        ConsentStore(app.runtime.db).grant(CUSTOMER, "shop", ["profile:basic"], "展示", later)
    assert drawn.title.zh_CN == _host_title(app) == shown


def test_a_partner_without_profile_basic_sees_no_segment_or_branch(make_app: Any, kit: Any) -> None:
    """Not granted ``profile:basic`` at all: blank in the harness as on the host."""
    plugin = kit.plugin("shop", kind="partner", scopes=["location:city"], page=_customer_page(kit))
    drawn = PluginHarness(plugin, manifest=plugin.MANIFEST).page("report")
    assert drawn is not None
    assert drawn.title.zh_CN == _host_title(make_app(plugin)) == "-/-"


def test_a_partner_whose_consents_are_unknown_sees_no_segment_or_branch(kit: Any) -> None:
    """Consents that could not be read: the host blanks segment and branch (it cannot know)."""
    plugin = kit.plugin("shop", kind="partner", scopes=["profile:basic"], page=_customer_page(kit))
    drawn = PluginHarness(plugin, manifest=plugin.MANIFEST, consents_unknown=True).page("report")
    assert drawn is not None
    assert drawn.title.zh_CN == "-/-"
