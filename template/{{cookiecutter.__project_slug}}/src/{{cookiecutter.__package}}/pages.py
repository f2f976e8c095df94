{%- set c = cookiecutter -%}
{%- set plans = c.search or c.transactions -%}
"""The plugin's own screens: what its deep links ``fulcrum://{{ c.plugin_id }}/<path>`` open.

The app asks ``GET /v1/pages/{{ c.plugin_id }}/<path>`` and the host calls :func:`page` with the path.
The app has no screens of its own for a plugin, so every link the other hooks hand out must open one
here (the conformance kit opens each of them); any other path answers ``None``, a 404.
"""

from __future__ import annotations

from fulcrum_sdk import {% if plans %}Action, {% endif %}LocalizedText, Page, PageLine, PageSection, PluginContext, hookimpl

from {{ c.__package }}._about import NAME
{%- if plans %}
from {{ c.__package }}.plans import PLANS, Plan, yuan
{%- endif %}

__all__ = ["page"]

T = LocalizedText

GUIDE = Page(
    title=T(zh_CN=f"三分钟了解{NAME.zh_CN}", en=f"{NAME.get('en')} in three minutes"),
    summary=T(zh_CN="功能介绍与常见问题", en="What it does, and frequent questions"),
    sections=(
        PageSection(key="faq", title=T(zh_CN="常见问题", en="Questions"), lines=(
            PageLine(
                label=T(zh_CN="谁能使用？", en="Who can use it?"),
                note=T(zh_CN="开通本服务的分行客户均可使用。", en="Customers of the branches offering it."),
            ),
            PageLine(
                label=T(zh_CN="如何取消？", en="How do I cancel?"),
                note=T(zh_CN="在“我的-授权管理”中撤销授权即可。", en="Revoke it under Me > Consents."),
            ),
        )),
    ),
)
"""The getting-started guide (``guide``): the same for every customer, built once."""
{%- if plans %}
PLAN_TITLE = T(zh_CN="套餐", en="Plan")


def _plan_line(plan: Plan, left: int) -> PageLine:
    return PageLine(
        label=plan.name,
        value=T(zh_CN=f"{yuan(plan.price_fen)} · 剩余{left}份", en=f"{yuan(plan.price_fen)} · {left} left"),
        action=Action(uri=plan.uri),
    )
{%- endif %}


@hookimpl
async def page(ctx: PluginContext, path: str) -> Page | None:
    """``home``{% if plans %} (the plans on sale){% endif %}, ``guide``{% if plans %}, ``plans/<id>``{% endif %}; else ``None``."""
{%- if plans %}
    # One read of every plan's counter (possibly a second old, from the host's cache).
    taken = await ctx.storage.acounters([plan.sold_key for plan in PLANS.values()])
    left = {plan.id: plan.stock - taken[plan.sold_key] for plan in PLANS.values()}
{%- endif %}
    if path == "home":
        return Page(title=NAME, sections=(
{%- if plans %}
            PageSection(key="plans", title=T(zh_CN="在售套餐", en="Plans on sale"), lines=tuple(
                _plan_line(plan, left[plan.id]) for plan in PLANS.values() if left[plan.id] > 0
            )),
{%- endif %}
        ))
    if path == "guide":
        return GUIDE
{%- if plans %}
    head, _, plan_id = path.partition("/")
    plan = PLANS.get(plan_id) if head == "plans" else None
    if plan is not None:
        lines = (_plan_line(plan, left[plan.id]),)
        return Page(title=plan.name, sections=(PageSection(key="plan", title=PLAN_TITLE, lines=lines),))
{%- endif %}
    return None
