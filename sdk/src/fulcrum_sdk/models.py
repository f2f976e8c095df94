"""What hooks return and what the host hands to them: frozen msgspec Structs.

Money is always integer fen (1/100 CNY). Display text is :class:`LocalizedText` with ``zh-CN``
required; no display text may hold a bidi control, a control character or a line separator
(:mod:`fulcrum_sdk.display` says which and why). A field added in a later SDK version gets a default,
so older plugins keep working, unless the change is breaking and the SDK's minor version (before 1.0)
says so: sdk/CHANGELOG.md lists them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec

from fulcrum_sdk._in_words import worded
from fulcrum_sdk.display import DISPLAY_TEXT

__all__ = [
    "FEED_COLUMNS",
    "MAX_RESULT_DATA",
    "SLOT_IDS",
    "Action",
    "FeedItem",
    "Fen",
    "LocalizedText",
    "Page",
    "PageLine",
    "PageSection",
    "RiskLevel",
    "RiskTolerance",
    "SearchHit",
    "SlotOffer",
    "Targeting",
    "TransactionRequest",
    "TransactionResult",
    "TransactionType",
    "risk_allows",
]

Fen = Annotated[int, msgspec.Meta(ge=0, description="An amount of CNY in fen (1/100 yuan).")]
"""A non-negative amount of money in fen."""

RiskLevel = Literal["R1", "R2", "R3", "R4", "R5"]
"""A product's risk level, R1 (lowest) to R5 (highest)."""

RiskTolerance = Literal["C1", "C2", "C3", "C4", "C5"]
"""A customer's assessed risk tolerance, C1 (conservative) to C5 (aggressive)."""

SLOT_IDS: tuple[str, ...] = ("home.banner/v1", "home.kingkong/v1", "home.popup/v1", "home.notice/v1")
"""The slot ids the SDK knows; a deployment's inventory (capacities, caps) is configuration."""

FEED_COLUMNS: tuple[str, ...] = ("wealth", "education", "retirement", "life")
"""Feed columns: 财富 wealth, 投教 investor education, 养老 retirement, 生活 life and merchants."""

_END = r"(?!\n)$"
"""The end of a pattern: ``$`` alone also matches before a last newline in Python's ``re`` (msgspec's), so
a key ``b1\n`` or a link ending in a newline passed; the lookahead refuses it (and reads the same in a
JSON Schema's ECMAScript regex, where ``$`` is the end only)."""
_KEY_WORDS = "ASCII letters, digits and '.', '_', ':' or '-', starting with a letter or digit"
"""What an item's key and a machine code are made of, in words."""
_Key = Annotated[
    str, msgspec.Meta(pattern=worded(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}" + _END, f"1 to 64 {_KEY_WORDS}"))
]
_Text = Annotated[str, msgspec.Meta(min_length=1, max_length=400), DISPLAY_TEXT]
_URI_PATTERN = worded(
    r"^(fulcrum|https)://[!-~]+" + _END,
    "a link starting fulcrum:// or https://, then printable ASCII, no spaces (anything else "
    "percent-encoded)",
)
_Uri = Annotated[str, msgspec.Meta(pattern=_URI_PATTERN, max_length=2048)]
"""A link (RFC 3986): printable ASCII after the scheme, no space; anything else percent-encoded. A bidi
override, a C1 control, a line separator or a look-alike letter (``ｅxample``, ``е`` Cyrillic) in a link
made it read as another address, the bank's own, where the app or a reviewer shows it."""


def risk_allows(tolerance: RiskTolerance, level: RiskLevel) -> bool:
    """Suitability: a C-n customer may buy products up to R-n (C3 → R1–R3)."""
    return int(level[1]) <= int(tolerance[1])


class LocalizedText(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Display text: ``zh-CN`` is required, ``en`` optional. One line, unless the field holding it is a
    ``summary`` or ``description`` (a body: line feeds separate its paragraphs); bidi controls, other
    control characters and line separators are refused (see :mod:`fulcrum_sdk.display`)."""

    zh_CN: _Text = msgspec.field(name="zh-CN")  # noqa: N815 - mirrors the wire name
    en: _Text | None = None

    def get(self, locale: str) -> str:
        """The text for ``locale``, falling back to zh-CN."""
        if locale.startswith("en") and self.en:
            return self.en
        return self.zh_CN


class Action(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the app does when the customer taps an item: open a deep link or an https page."""

    uri: _Uri


MAX_TARGET_SEGMENTS = 32
"""Segments one item may name: a bank's customer segments are a handful (mass, affluent, private, ...)."""
MAX_TARGET_BRANCHES = 64
"""Branches one item may name: a national bank has about 40 first-tier branches (0755, 021, 028, ...)."""
MAX_TARGET_LOCALES = 8
"""Locales one item may name: the app speaks zh-CN and en."""
_SEGMENT_PATTERN = worded(
    r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}" + _END,
    "a segment name of 1 to 64 ASCII letters, digits and '_', '.' or '-', starting with a letter or "
    "digit, such as affluent",
)
_Segment = Annotated[str, msgspec.Meta(pattern=_SEGMENT_PATTERN)]
"""A customer segment's name, as the bank's data names it: ``mass``, ``affluent``, ``private``."""
_BRANCH_PATTERN = worded(
    r"^[0-9a-z][0-9a-z-]{0,30}" + _END,
    "a branch code of 1 to 31 lowercase letters, digits and '-', starting with a letter or digit, "
    "such as 0755",
)
_BranchCode = Annotated[str, msgspec.Meta(pattern=_BRANCH_PATTERN)]
"""A branch code, as its branch file is named: ``0755``, ``021``."""
_LOCALE_PATTERN = worded(
    r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,4}" + _END,
    "a language tag of ASCII letters and digits joined by '-', such as zh-CN, en or zh-Hans-CN",
)
_Locale = Annotated[str, msgspec.Meta(pattern=_LOCALE_PATTERN)]
"""A locale as a BCP 47 language tag: ``zh-CN``, ``en``, ``zh-Hans-CN``."""


class Targeting(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Who an item is for; an empty or missing set means "everyone". The host applies it."""

    segments: Annotated[frozenset[_Segment], msgspec.Meta(max_length=MAX_TARGET_SEGMENTS)] = frozenset()
    branches: Annotated[frozenset[_BranchCode], msgspec.Meta(max_length=MAX_TARGET_BRANCHES)] = frozenset()
    locales: Annotated[frozenset[_Locale], msgspec.Meta(max_length=MAX_TARGET_LOCALES)] = frozenset()

    def matches(self, *, segment: str, branch: str, locale: str) -> bool:
        """True when every non-empty criterion admits the customer."""
        return (
            (not self.segments or segment in self.segments)
            and (not self.branches or branch in self.branches)
            and (not self.locales or locale in self.locales)
        )


_SLOT_PATTERN = worded(r"^[a-z][a-z0-9_.]*/v[0-9]+" + _END, f"a slot id such as {SLOT_IDS[0]}")


class SlotOffer(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A candidate item for one home-page slot; the host ranks, filters and caps the candidates."""

    slot: Annotated[str, msgspec.Meta(pattern=_SLOT_PATTERN)]
    key: _Key
    title: LocalizedText
    subtitle: LocalizedText | None = None
    image: _Uri | None = None
    action: Action
    priority: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 100
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    targeting: Targeting | None = None

    def live_at(self, now: datetime) -> bool:
        """True when ``now`` is inside the validity window (``valid_until`` is exclusive): the host's
        rule. A naive time (``ctx.now`` never is one) is read as UTC."""
        # aware() inlined: the host asks this for every offer with a window on every page.
        moment = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
        start, end = self.valid_from, self.valid_until
        if start is not None and (start if start.tzinfo is not None else start.replace(tzinfo=UTC)) > moment:
            return False
        return end is None or moment < (end if end.tzinfo is not None else end.replace(tzinfo=UTC))


class SearchHit(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One search result; ``relevance`` (0–1) is the plugin's own judgement of the match."""

    key: _Key
    kind: Literal["function", "product", "article", "merchant", "service"]
    title: LocalizedText
    subtitle: LocalizedText | None = None
    action: Action
    relevance: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.5


_COLUMN_PATTERN = worded(
    r"^[a-z][a-z0-9_]{0,31}" + _END,
    "a column name of 1 to 32 lowercase letters, digits and '_', starting with a letter, such as "
    f"{FEED_COLUMNS[0]}",
)


class FeedItem(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One card in a content feed column."""

    key: _Key
    column: Annotated[str, msgspec.Meta(pattern=_COLUMN_PATTERN)]
    kind: Literal["article", "video", "live", "product", "offer"]
    title: LocalizedText
    summary: LocalizedText | None = None
    image: _Uri | None = None
    action: Action
    published_at: datetime
    priority: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 100
    targeting: Targeting | None = None


class PageLine(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A line of a page section: a label, its value (``¥1,234.56``, ``30/100``), why, where a tap goes."""

    label: LocalizedText
    value: LocalizedText | None = None
    note: LocalizedText | None = None
    action: Action | None = None


class PageSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A titled block of a page, with an optional summary and up to 50 lines; ``key`` tells it apart
    from the page's other sections (a link's query may name the one to open on), so it is unique there."""

    key: _Key
    title: LocalizedText
    summary: LocalizedText | None = None
    lines: Annotated[tuple[PageLine, ...], msgspec.Meta(max_length=50)] = ()


class Page(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A plugin's own screen, opened by one of its deep links (``fulcrum://<plugin>/<path>``): a title, a
    summary and up to 20 sections. The app renders it natively; the host checks it like any result."""

    title: LocalizedText
    summary: LocalizedText | None = None
    sections: Annotated[tuple[PageSection, ...], msgspec.Meta(max_length=20)] = ()


_TYPE_KEY_PATTERN = worded(
    r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*" + _END,
    "two names of lowercase letters, digits and '_', each starting with a letter, joined by a dot, "
    "such as pension.contribute",
)


class TransactionType(msgspec.Struct, frozen=True, kw_only=True):
    """A transaction a plugin owns, declared once at startup through ``register_transaction_types``.

    ``params`` is a msgspec Struct type: the host decodes and validates the request body's
    ``params`` with it (constraints and ``__post_init__`` included) before anything is journaled.
    Every type states its product risk, which the host's suitability check always applies: a fixed
    ``risk_level``, or, for a type selling several products, ``product_field`` (the parameter naming
    the product) with ``product_risks`` (each product it may sell and its level); ``risk_of``, when
    given, must rate each request's product as ``product_risks`` does. ``amount_field`` names the
    parameter holding the amount in fen, for the host's limits; ``None`` states the type moves no
    money. Both must equal the type's declaration in ``fulcrum-plugin.toml``, or the host refuses it.
    ``account_fields`` names the parameters holding one of the customer's accounts, by the id the
    plugin sees in ``ctx.data.accounts()`` (a partner's pairwise id): the host refuses an id that is not
    one of them (422 ``transaction.unknown_account`` naming ``params.<field>``), journals the bank's
    account id, and hands the plugin the parameters as sent. Such a type requires ``accounts:read``.
    """

    key: Annotated[str, msgspec.Meta(pattern=_TYPE_KEY_PATTERN)]
    name: LocalizedText
    description: LocalizedText | None = None
    params: type[msgspec.Struct]
    required_scopes: frozenset[str] = frozenset({"transactions:write"})
    risk_level: RiskLevel | None = None
    product_field: str | None = None
    product_risks: Mapping[str, RiskLevel] = msgspec.field(default_factory=dict)
    risk_of: Callable[[Any], RiskLevel | None] | None = None
    amount_field: str | None
    account_fields: frozenset[str] = frozenset()


class TransactionRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A journaled transaction handed to its owning plugin's ``execute_transaction``."""

    id: str
    type: str
    params: Any
    # Unique among the customer's transactions and the same on every call about this one (a retry,
    # reconciliation): derived from the Idempotency-Key and the OAuth client that sent it, whose keys
    # are their own, so two clients' same key never meet here either.
    idempotency_key: str
    amount_fen: int | None = None
    risk_level: RiskLevel | None = None
    created_at: datetime


MAX_RESULT_DATA = 50
"""Entries one transaction result's ``data`` may hold (references, amounts, dates: a receipt's fields)."""
_DataKey = Annotated[str, msgspec.Meta(min_length=1, max_length=64), DISPLAY_TEXT]
_DataText = Annotated[str, msgspec.Meta(max_length=1000), DISPLAY_TEXT]
_CODE_PATTERN = worded(
    r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}" + _END,
    f"1 to 128 {_KEY_WORDS}, such as pension.annual_cap_exceeded",
)
_Code = Annotated[str, msgspec.Meta(pattern=_CODE_PATTERN)]
"""A machine code (``pension.annual_cap_exceeded``): journaled, answered as the problem's ``code`` and
logged, so a key of ASCII letters, digits and ``. _ : -``, never text that could hold a control."""


class TransactionResult(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What ``execute_transaction`` returns; a refusal is better raised as ``TransactionRefused``.

    ``data`` is bounded like every result (it is checked on the host's event loop, journaled and sent
    back): at most :data:`MAX_RESULT_DATA` entries, keys of 1–64 characters, text of at most 1,000.
    ``message``, ``reference`` and ``data`` (its keys and text) are shown on the customer's receipt:
    display text, one line each. ``code`` (``TransactionRefused``'s too) is a key the app switches on:
    1–128 ASCII letters, digits and ``. _ : -``, starting with a letter or digit."""

    status: Literal["succeeded", "failed"]
    reference: Annotated[str, msgspec.Meta(max_length=128), DISPLAY_TEXT] | None = None
    code: _Code | None = None
    message: LocalizedText | None = None
    data: Annotated[dict[_DataKey, _DataText | int | bool], msgspec.Meta(max_length=MAX_RESULT_DATA)] = {}
