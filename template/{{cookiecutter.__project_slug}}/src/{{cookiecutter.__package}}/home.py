"""Home page: an entry icon in the kingkong grid (金刚位) and a banner (轮播) for every customer.

The display hooks are ``async def`` even when they never wait: the host then runs them as a plain
function call, with no thread and no task. Await only async APIs in them (``ctx.storage.aget``, an
async HTTP client); a blocking call would hold up every customer's page on this worker.
"""

from __future__ import annotations

from fulcrum_sdk import LocalizedText as T
from fulcrum_sdk import PluginContext, SlotOffer, hookimpl

from {{ cookiecutter.__package }}._about import ENTRY, NAME, PLUGIN_ID

__all__ = ["home_slot_offers"]


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
