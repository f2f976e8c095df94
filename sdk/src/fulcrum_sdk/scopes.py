"""The scope vocabulary: every scope a plugin, app or staff tool can be granted, with its meaning.

A scope is either *customer data* (needs the customer's live consent for partner plugins), a
*placement* (where a plugin may show things), an *action*, an *app* scope (what the mobile app may
call on the customer's behalf) or a *staff* scope for platform tools. Only the first three kinds can be
granted to plugins.
"""

from __future__ import annotations

import enum
from typing import Literal

import msgspec

from fulcrum_sdk.models import LocalizedText

__all__ = [
    "APP_SCOPES",
    "CUSTOMER_DATA_SCOPES",
    "PLUGIN_GRANTABLE_KINDS",
    "SCOPES",
    "Scope",
    "ScopeKind",
    "Sensitivity",
    "is_known",
    "slot_scope",
]

ScopeKind = Literal["customer_data", "placement", "action", "app", "staff"]


class Sensitivity(enum.IntEnum):
    """How much harm misuse of a scope could do; ``HIGH`` needs two approvers in the registry."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3


class Scope(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of the vocabulary."""

    name: str
    kind: ScopeKind
    sensitivity: Sensitivity
    description: LocalizedText


def _s(name: str, kind: ScopeKind, sensitivity: Sensitivity, zh: str, en: str) -> Scope:
    return Scope(name=name, kind=kind, sensitivity=sensitivity, description=LocalizedText(zh_CN=zh, en=en))


_L, _M, _H = Sensitivity.LOW, Sensitivity.MEDIUM, Sensitivity.HIGH

SCOPES: dict[str, Scope] = {
    s.name: s
    for s in (
        _s("profile:basic", "customer_data", _L, "客户分层、所属分行与语言", "segment, branch and language"),
        _s("profile:risk", "customer_data", _M, "风险承受能力评估结果（C1–C5）", "risk tolerance (C1–C5)"),
        _s(
            "accounts:read",
            "customer_data",
            _H,
            "账户余额与月均收支",
            "account balances and monthly cash flow",
        ),
        _s(
            "holdings:read",
            "customer_data",
            _H,
            "持有的理财、基金与存款产品",
            "wealth, fund and deposit holdings",
        ),
        _s(
            "pension:read",
            "customer_data",
            _H,
            "社保、公积金与个人养老金账户",
            "social security, housing fund, personal pension",
        ),
        _s("location:city", "customer_data", _L, "所在城市", "city of residence"),
        _s(
            "transactions:write",
            "action",
            _H,
            "代您发起交易（需您确认）",
            "start transactions on your behalf",
        ),
        _s("push:send", "action", _M, "向您推送消息", "send you push messages"),
        _s("slot:home.banner", "placement", _L, "首页轮播广告位", "home page banner carousel"),
        _s("slot:home.kingkong", "placement", _L, "首页金刚位", "home page icon grid"),
        _s("slot:home.popup", "placement", _M, "首页弹窗", "home page popup"),
        _s("slot:home.notice", "placement", _L, "首页公告", "home page notices"),
        _s("search:contribute", "placement", _L, "搜索结果", "search results"),
        _s("feed:contribute", "placement", _L, "内容资讯流", "content feeds"),
        _s("home:read", "app", _L, "查看首页", "read the home page"),
        _s("search:read", "app", _L, "使用搜索", "use search"),
        _s("feeds:read", "app", _L, "浏览资讯", "read content feeds"),
        _s("pages:read", "app", _L, "打开服务页面", "open the services' pages"),
        _s("transactions:read", "app", _M, "查看交易记录", "read your transactions"),
        _s("consents:read", "app", _L, "查看授权", "read your consents"),
        _s("consents:write", "app", _M, "管理授权", "manage your consents"),
        _s("platform:read", "staff", _L, "查看平台运行状态", "read platform state"),
        _s("registry:publish", "staff", _M, "发布插件版本", "publish plugin releases"),
        _s("registry:review", "staff", _H, "审核插件版本", "review plugin releases"),
        _s("registry:install", "staff", _L, "安装已批准的插件", "install approved plugins"),
        _s("branch:read", "staff", _L, "查看分行插件配置", "read branch plugin configuration"),
    )
}

PLUGIN_GRANTABLE_KINDS: frozenset[str] = frozenset({"customer_data", "placement", "action"})

APP_SCOPES: frozenset[str] = frozenset(n for n, s in SCOPES.items() if s.kind == "app") | {
    "transactions:write"
}
"""What the mobile app's customer token carries by default."""

CUSTOMER_DATA_SCOPES: frozenset[str] = frozenset(n for n, s in SCOPES.items() if s.kind == "customer_data")


def is_known(name: str) -> bool:
    """True when ``name`` is in the vocabulary."""
    return name in SCOPES


def slot_scope(slot_id: str) -> str:
    """The placement scope for a versioned slot id: ``home.banner/v1`` → ``slot:home.banner``."""
    return "slot:" + slot_id.split("/", 1)[0]
