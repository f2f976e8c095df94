"""Home page: an entry icon in the kingkong grid (金刚位) and a banner (轮播) for every customer, and
this month's campaign banners, scheduled per audience.

The display hooks are ``async def`` even when they never wait: the host then runs them as a plain
function call, with no thread and no task. Await only async APIs in them (``ctx.storage.aget``, an
async HTTP client); a blocking call would hold up every customer's page on this worker.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from fulcrum_sdk import AudienceContext, PluginContext, SlotOffer, Targeting, hookimpl
from fulcrum_sdk import LocalizedText as T

from {{ cookiecutter.__package }}._about import ENTRY, GUIDE, NAME, PLUGIN_ID

__all__ = ["CAMPAIGN_SEGMENT", "home_slot_campaigns", "home_slot_offers"]

CAMPAIGN_SEGMENT = "affluent"
"""The customer segment the second campaign banner is for (the host reads it with ``profile:basic``)."""
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")


@hookimpl
async def home_slot_offers(ctx: PluginContext) -> list[SlotOffer]:
    """An entry icon, and a banner that names the customer's city when the plugin may know it.

    ``location:city`` is an optional scope (and, for a partner, needs the customer's consent): ask
    ``ctx.data.allows`` first and fall back to generic text instead of failing without it. When the
    host could not read the customer's consents, ``allows`` raises ``DataUnavailable``: let it
    propagate (the plugin is left out of this page, not blamed) rather than guess "not consented".
    """
    city = ctx.data.city() if ctx.data.allows("location:city") else None
    if city is not None:
        title = T(zh_CN=f"{city.name.zh_CN}专属：{NAME.zh_CN}", en=f"{NAME.get('en')}: {city.name.get('en')}")
    else:
        title = T(zh_CN=f"{NAME.zh_CN}上线啦", en=f"{NAME.get('en')} is here")
    return [
        SlotOffer(slot="home.kingkong/v1", key="entry", title=NAME, action=ENTRY),
        SlotOffer(
            slot="home.banner/v1",
            key="launch",
            title=title,
            subtitle=T(zh_CN="点击了解详情", en="Tap to learn more"),
            image=f"https://static.example.com/{PLUGIN_ID}/banner.png",
            action=ENTRY,
            priority=200,
        ),
    ]


def _month_window(now: datetime) -> tuple[datetime, datetime]:
    """The calendar month (Beijing time) holding ``now``: its first instant and the next month's."""
    start = now.astimezone(BEIJING).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if start.month == 12:
        return start, start.replace(year=start.year + 1, month=1)
    return start, start.replace(month=start.month + 1)


@hookimpl
async def home_slot_campaigns(ctx: AudienceContext) -> list[SlotOffer]:
    """This month's banners: one for every customer, and one for the ``affluent`` segment only.

    The host calls this once per ``campaign_ttl_ms`` for everyone, not per customer: ``ctx`` has no
    customer and no data, so nothing here may depend on who is looking. Say who sees an offer with
    ``targeting`` and when with ``valid_from``/``valid_until``; the host applies both on every page.
    A segment is ``profile:basic`` data: without it granted (and, for a partner, consented to) the
    customer's segment is blank and the targeted banner reaches nobody.
    """
    start, end = _month_window(ctx.now)
    return [
        SlotOffer(
            slot="home.banner/v1",
            key=f"month-{start:%Y-%m}",
            title=T(zh_CN=f"{NAME.zh_CN}{start.month}月活动", en=f"{NAME.get('en')}: this month's offers"),
            subtitle=T(zh_CN="本月有效", en="This month only"),
            image=f"https://static.example.com/{PLUGIN_ID}/month.png",
            action=ENTRY,
            priority=150,
            valid_from=start,
            valid_until=end,
        ),
        SlotOffer(
            slot="home.banner/v1",
            key=f"{CAMPAIGN_SEGMENT}-{start:%Y-%m}",
            title=T(zh_CN=f"{NAME.zh_CN}贵宾专享", en=f"{NAME.get('en')}: for our premier customers"),
            subtitle=T(zh_CN="查看使用指南", en="Read the guide"),
            image=f"https://static.example.com/{PLUGIN_ID}/premier.png",
            action=GUIDE,
            priority=250,
            valid_from=start,
            valid_until=end,
            targeting=Targeting(segments=frozenset({CAMPAIGN_SEGMENT})),
        ),
    ]
