"""``home_slot_campaigns`` in the SDK: its context has no customer, the harness and the conformance kit
run it, and a manifest may declare it."""

from __future__ import annotations

import inspect
import time
import types
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from fulcrum_sdk import AudienceContext, hookimpl
from fulcrum_sdk.conformance import run_conformance
from fulcrum_sdk.manifest import Manifest, semantic_problems
from fulcrum_sdk.models import Action, LocalizedText, SlotOffer, Targeting
from fulcrum_sdk.testing import PluginHarness, ResultError

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
T = LocalizedText(zh_CN="活动")
GO = Action(uri="fulcrum://campaign")


def _manifest(
    *, kind: str = "department", hooks: tuple[str, ...] = ("home_slot_campaigns",),
    slots: tuple[str, ...] = ("home.banner/v1", "home.kingkong/v1"),
    optional: tuple[str, ...] = ("profile:basic",),
) -> Manifest:
    return msgspec.convert(
        {
            "id": "campaigner", "publisher": "test-bank", "kind": kind, "sdk": ">=0.1,<1",
            "hooks": list(hooks), "slots": list(slots),
            "name": {"zh-CN": "活动"}, "description": {"zh-CN": "活动插件"},
            "owner": {"name": "Ops", "email": "ops@example.com"},
            "scopes": {
                "required": dict.fromkeys(("slot:home.banner", "slot:home.kingkong"), "campaigns"),
                "optional": dict.fromkeys(optional, "targeting"),
            },
        },
        Manifest,
    )


def _offer(key: str, slot: str = "home.banner/v1", **extra: Any) -> SlotOffer:
    return SlotOffer(slot=slot, key=key, title=T, action=GO, **extra)


def _plugin(**hooks: Callable[..., Any]) -> types.SimpleNamespace:
    return types.SimpleNamespace(**{name: hookimpl(fn) for name, fn in hooks.items()})


def test_the_audience_context_has_nothing_about_a_customer() -> None:
    """``AudienceContext`` carries the grant, the time, the settings and an id, and no customer, customer
    data or storage: a plugin cannot personalize through it."""
    fields = set(AudienceContext.__struct_fields__)
    assert fields == {"plugin_id", "scopes", "now", "settings", "request_id"}
    ctx = AudienceContext(plugin_id="p", scopes=frozenset({"slot:home.banner"}), now=NOW)
    for missing in ("customer", "data", "storage", "locale"):
        assert not hasattr(ctx, missing)
    assert ctx.has_scope("slot:home.banner")
    assert not ctx.has_scope("profile:basic")


def test_the_harness_calls_the_hook_with_an_audience_context() -> None:
    """``home_slot_campaigns()`` hands the plugin an ``AudienceContext`` with its grant, ``now`` and
    settings, and drops offers for slots the plugin holds no scope for."""
    seen: list[Any] = []

    def campaigns(ctx: Any) -> list[SlotOffer]:
        seen.append(ctx)
        return [_offer("b"), _offer("p", slot="home.popup/v1")]

    harness = PluginHarness(
        _plugin(home_slot_campaigns=campaigns), manifest=_manifest(), now=NOW, settings={"theme": "spring"}
    )
    assert [o.key for o in harness.home_slot_campaigns()] == ["b"]
    (ctx,) = seen
    assert isinstance(ctx, AudienceContext)
    assert (ctx.plugin_id, ctx.now, dict(ctx.settings)) == ("campaigner", NOW, {"theme": "spring"})
    assert ctx.scopes == frozenset({"slot:home.banner", "slot:home.kingkong"})


@pytest.mark.parametrize("garbage", [{"slot": "home.banner/v1"}, "banner", [_offer("b"), 7]])
def test_the_harness_refuses_a_campaign_result_of_another_shape(garbage: Any) -> None:
    """A campaign result that is not a list of ``SlotOffer`` raises ``ResultError``, as the host drops it."""
    harness = PluginHarness(_plugin(home_slot_campaigns=lambda ctx: garbage), manifest=_manifest(), now=NOW)
    with pytest.raises(ResultError):
        harness.home_slot_campaigns()


def test_a_plugin_without_the_hook_has_no_campaigns() -> None:
    """``home_slot_campaigns()`` is empty for a plugin that implements only ``home_slot_offers``."""
    plugin = _plugin(home_slot_offers=lambda ctx: [_offer("own")])
    harness = PluginHarness(plugin, manifest=_manifest(hooks=("home_slot_offers",)), now=NOW)
    assert harness.home_slot_campaigns() == []
    assert [o.key for o in harness.shown_offers()] == ["own"]


@pytest.mark.parametrize(("kind", "scopes", "consented", "expected"), [
    ("department", ("profile:basic",), None, {"own", "always", "open", "mass"}),
    ("department", (), None, {"own", "always", "open"}),  # no profile:basic: no segment to match
    ("partner", ("profile:basic",), None, {"own", "always", "open", "mass"}),
    ("partner", ("profile:basic",), (), {"own", "always", "open"}),  # not consented to profile:basic
])
def test_shown_offers_filter_campaigns_for_the_customer(
    kind: str, scopes: tuple[str, ...], consented: tuple[str, ...] | None, expected: set[str]
) -> None:
    """``shown_offers()`` adds the campaign offers to the plugin's own, by the host's rules for this
    customer: validity window at ``now``, targeting as the plugin sees the customer."""
    hour = timedelta(hours=1)
    campaigns = [
        _offer("always"),
        _offer("ended", valid_until=NOW - hour),
        _offer("open", valid_from=NOW - hour, valid_until=NOW + hour),
        _offer("mass", slot="home.kingkong/v1", targeting=Targeting(segments=frozenset({"mass"}))),
        _offer("affluent", slot="home.kingkong/v1", targeting=Targeting(segments=frozenset({"affluent"}))),
    ]
    plugin = _plugin(home_slot_offers=lambda ctx: [_offer("own")], home_slot_campaigns=lambda ctx: campaigns)
    manifest = _manifest(kind=kind, hooks=("home_slot_offers", "home_slot_campaigns"))
    harness = PluginHarness(
        plugin, manifest=manifest, now=NOW, persona="young_professional", consented=consented,
        scopes=("slot:home.banner", "slot:home.kingkong", *scopes),
    )
    assert {o.key for o in harness.shown_offers()} == expected


def test_an_offer_in_both_hooks_is_shown_once() -> None:
    """The same slot and key from both hooks is shown once, the per-customer one first (as the host)."""
    plugin = _plugin(
        home_slot_offers=lambda ctx: [_offer("same", priority=1)],
        home_slot_campaigns=lambda ctx: [_offer("same", priority=9)],
    )
    manifest = _manifest(hooks=("home_slot_offers", "home_slot_campaigns"))
    (shown,) = PluginHarness(plugin, manifest=manifest, now=NOW).shown_offers()
    assert shown.priority == 1


def test_a_manifest_may_declare_the_hook_and_needs_slots_for_it() -> None:
    """``home_slot_campaigns`` is a known hook; like ``home_slot_offers`` it needs a declared slot."""
    assert semantic_problems(_manifest()) == []
    problems = semantic_problems(_manifest(slots=()))
    assert [(p.key, p.problem) for p in problems] == [
        ("slots", "hook 'home_slot_campaigns' is implemented but no slot is declared")
    ]


def _check(plugin: Any, **deadlines: int) -> Any:
    results = run_conformance(
        plugin, manifest=_manifest(), deadlines={"home_slot_campaigns": 10_000, **deadlines},
        personas=["young_professional"],
    )
    return {r.id: r for r in results}


def test_the_conformance_kit_runs_the_hook() -> None:
    """A plugin returning valid campaigns passes ``hook.home_slot_campaigns``; one returning garbage
    fails it with the reason; one not implementing it is skipped."""
    good = _check(_plugin(home_slot_campaigns=lambda ctx: [_offer("b")]))
    assert good["hook.home_slot_campaigns"].status == "passed"
    bad = _check(_plugin(home_slot_campaigns=lambda ctx: "banner"))["hook.home_slot_campaigns"]
    assert bad.status == "failed"
    assert "ResultError" in bad.details[0]
    none = run_conformance(
        _plugin(home_slot_offers=lambda ctx: []), manifest=_manifest(hooks=("home_slot_offers",)),
        personas=["young_professional"],
    )
    assert {r.id: r for r in none}["hook.home_slot_campaigns"].status == "skipped"


def test_the_conformance_kit_holds_the_hook_to_its_deadline() -> None:
    """A campaign hook slower than its deadline fails ``hooks.within_deadline``, named in the details."""

    def slow(ctx: Any) -> list[SlotOffer]:
        time.sleep(0.05)
        return []

    results = _check(_plugin(home_slot_campaigns=slow), home_slot_campaigns=1)
    assert results["hooks.within_deadline"].status == "failed"
    assert "campaigns" in results["hooks.within_deadline"].details[0]


def test_the_partner_guides_example_runs_in_the_harness() -> None:
    """The partner guide's "Campaigns" example is a working hook: the harness shows its spring banner
    to everyone and its segment-targeted welcome only with ``profile:basic``."""
    import re
    from pathlib import Path

    guide = (Path(__file__).resolve().parents[2] / "docs" / "partner-guide.md").read_text(encoding="utf-8")
    section = guide.split("## Campaigns", 1)[1].split("\n## ", 1)[0]
    example = re.search(r"^```python\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL)
    assert example is not None
    module = types.ModuleType("campaign_example")
    exec(  # noqa: S102 - the guide's own example, run as a plugin module
        "from datetime import UTC, datetime\n"
        "from fulcrum_sdk import Action, AudienceContext, LocalizedText, SlotOffer, Targeting, hookimpl\n"
        + example.group(1),
        module.__dict__,
    )
    # Like every display hook the guide and the template show, it is ``async def`` (no worker thread).
    assert inspect.iscoroutinefunction(module.home_slot_campaigns)
    manifest = _manifest()
    without = PluginHarness(module, manifest=manifest, now=NOW, scopes=("slot:home.banner",))
    assert [o.key for o in without.shown_offers()] == ["spring-sale"]
    assert without.home_slot_campaigns()[0].title.zh_CN == "深圳春季特惠"
    with_basic = PluginHarness(
        module, manifest=manifest, now=NOW, scopes=("slot:home.banner", "profile:basic"),
        persona="young_professional", settings={"city": "上海"},
    )
    assert [o.key for o in with_basic.shown_offers()] == ["spring-sale", "mass-welcome"]
    assert with_basic.home_slot_campaigns()[0].title.zh_CN == "上海春季特惠"


def test_the_harness_gives_the_campaign_call_the_time_to_the_second() -> None:
    """As the host does, the harness hands ``home_slot_campaigns`` its ``now`` to the second."""
    seen: list[Any] = []
    exact = NOW.replace(microsecond=123456)
    harness = PluginHarness(
        _plugin(home_slot_campaigns=lambda ctx: seen.append(ctx) or []), manifest=_manifest(), now=exact
    )
    harness.home_slot_campaigns()
    assert seen[0].now == exact.replace(microsecond=0)
