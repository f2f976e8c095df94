"""Checking what a plugin's hook returned, shared by the host's dispatcher and the test harness."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import date, datetime
from operator import attrgetter
from typing import TYPE_CHECKING, Any, TypeVar, get_args, get_type_hints

import msgspec

from fulcrum_sdk._in_words import bound_problem, dotted, echoed, pattern_problem, split_message, value_at
from fulcrum_sdk.data import RiskProfile
from fulcrum_sdk.display import find_display_problem, json_may_refuse
from fulcrum_sdk.models import (
    FeedItem,
    LocalizedText,
    Page,
    RiskLevel,
    SearchHit,
    SlotOffer,
    Targeting,
    TransactionResult,
    TransactionType,
    risk_allows,
)

if TYPE_CHECKING:
    from fulcrum_sdk.context import Customer

__all__ = [
    "LIST_RESULT_TYPES", "MAX_PAGE_QUERY", "MAX_SEARCH_QUERY", "MAX_TRANSACTION_FEN", "OWN_SEEN_SIZE",
    "PAGE_PATH", "PAGE_QUERY_KEY", "ResultError", "Seen", "UnratedProductError", "account_fields_problem",
    "check_list", "check_page",
    "check_transaction_result", "is_page_path", "page_path_problem", "page_query_problem",
    "rated_risk", "received_page_path", "received_search_query", "suitability_problem", "targeting_admits",
    "whole_fen", "wire_name",
]

_S = TypeVar("_S", bound=msgspec.Struct)

LIST_RESULT_TYPES: dict[str, type[msgspec.Struct]] = {
    "home_slot_offers": SlotOffer,
    "home_slot_campaigns": SlotOffer,
    "search": SearchHit,
    "feed_items": FeedItem,
}


def targeting_admits(targeting: Targeting | None, customer: Customer) -> bool:
    """The host's targeting rule: ``None`` is everyone, else every non-empty criterion must admit the
    customer (as the plugin sees them: the harness applies it too)."""
    return targeting is None or targeting.matches(
        segment=customer.segment, branch=customer.branch, locale=customer.locale
    )


class ResultError(ValueError):
    """A hook returned something other than its documented shape."""


_MEMO_SIZE = 4096
"""How many distinct valid results are remembered per result type before the memo starts over."""

_valid: dict[type[msgspec.Struct], dict[Any, Any]] = {}

_dt_fields: dict[type[msgspec.Struct], Callable[[Any], tuple[Any, ...]] | None] = {}

Seen = dict[int, tuple[Any, Any]]
"""By ``id``: a result object already checked, and its checked copy (a plugin returning the same
prebuilt offer every time is answered without hashing it). The object is held, so its id is not reused."""

_seen: Seen = {}
"""The objects seen by callers that name no owner (the test harness)."""

OWN_SEEN_SIZE = 512
"""How many result objects one owner's :data:`Seen` holds before it starts over."""


def _mentions_datetime(hint: Any) -> bool:
    return hint is datetime or any(_mentions_datetime(arg) for arg in get_args(hint))


def _datetimes_of(cls: type[msgspec.Struct]) -> Callable[[Any], tuple[Any, ...]] | None:
    """A getter of ``cls``'s datetime fields as a tuple, or ``None`` when it has none (worked out once)."""
    if cls not in _dt_fields:
        hints = get_type_hints(cls)
        names = [n for n in cls.__struct_fields__ if _mentions_datetime(hints[n])]
        getter = attrgetter(*names) if names else None
        _dt_fields[cls] = (lambda item: (getter(item),)) if len(names) == 1 and getter else getter
    return _dt_fields[cls]


def _memo_key(item: msgspec.Struct, cls: type[msgspec.Struct]) -> Any:
    """``item`` plus the UTC offsets of its datetime fields: equal instants in other zones compare
    equal but encode differently, so they must not share a memo entry."""
    datetimes = _datetimes_of(cls)
    if datetimes is None:
        return item
    values = datetimes(item)
    if not any(values):  # no datetime set (the common case for offers): the item is its own key
        return item
    return item, tuple(v.utcoffset() if isinstance(v, datetime) else None for v in values)


def _revalidate(item: _S, cls: type[_S], seen: Seen | None = None) -> _S:
    """``item`` checked against every constraint of ``cls``; the checked copy is what callers keep.

    Struct constructors do not check ``Meta`` constraints; a round trip through JSON does, at about
    2 µs an item, and proves the value can be sent. The copy is made of values msgspec decoded, never of
    the plugin's objects: a ``datetime`` passed through as it was kept the plugin's own ``tzinfo``,
    whose ``utcoffset`` the host then ran on every later page that filtered or ordered it, outside
    the plugin's deadline and breaker.
    Results are frozen structs, and validity depends only on the value, so a value
    seen before is answered from a bounded memo (a hash and an equality test) and the copy checked
    then is returned: an equal-but-odd value (``True`` for ``1``) never reaches the page as itself.
    A result object seen before is answered by identity: results are frozen, and one changed after it
    was returned (``msgspec.structs.force_setattr``) is not supported; its checked copy stays the answer.
    ``seen``: the plugin's own objects seen (the host keeps one per plugin), else the shared one. The
    objects are the plugin's own and may hold its code (a ``tzinfo``, a ``frozenset`` or ``Struct``
    subclass with a ``__del__``), which runs when they are let go of: in one shared memo, they were let go
    of when it started over, inside whichever plugin's check filled it, and that plugin paid for them.
    Anything that fails the check, however it fails, is a ``ValidationError``; so is a value that
    passes every constraint but cannot be written as JSON (text with a lone surrogate), and one whose
    display text holds a character the app refuses (a bidi override: :mod:`fulcrum_sdk.display`),
    named ``title.zh-CN: U+202E RIGHT-TO-LEFT OVERRIDE at index 4 ...``. That check runs on the decoded
    copy, only when the value is not in the memo: once per distinct value, like the rest; and its
    fields are walked only when the JSON text holds such a character anywhere (one scan in C).
    """
    objects = _seen if seen is None else seen
    known_object = objects.get(id(item))
    if known_object is not None and known_object[0] is item:
        return known_object[1]  # type: ignore[no-any-return]
    memo = _valid.get(cls)
    if memo is None:
        memo = _valid.setdefault(cls, {})
    try:
        known = memo.get(_memo_key(item, cls))
    except Exception:  # an unhashable field (a list where a tuple belongs) or a field's own hash
        known = None  # or equality failing: check it the long way
        memo = None
    if known is None:
        try:
            encoded = msgspec.json.encode(item)
        except (ValueError, OverflowError) as exc:  # text with a lone surrogate: neither sent nor stored
            raise msgspec.ValidationError(f"cannot be written as JSON: {exc}") from None
        except Exception as exc:  # a field holding something no result type allows (an arbitrary object)
            raise msgspec.ValidationError(f"cannot be checked: {type(exc).__name__}: {exc}") from None
        try:
            known = msgspec.json.decode(encoded, type=cls)
        except msgspec.ValidationError as exc:
            raise msgspec.ValidationError(_in_words(str(exc), encoded)) from None
        shown = find_display_problem(known) if json_may_refuse(encoded) else None
        if shown is not None:
            raise msgspec.ValidationError(f"{shown[0]}: {shown[1]}")
        if memo is None:
            return known
        if len(memo) >= _MEMO_SIZE:
            memo.clear()
        memo[_memo_key(known, cls)] = known
    # Hashable, so every field is immutable: this very object stays valid as long as it lives.
    if len(objects) >= (_MEMO_SIZE if seen is None else OWN_SEEN_SIZE):
        objects.clear()
    objects[id(item)] = (item, known)
    return known


def _in_words(message: str, encoded: bytes) -> str:
    """msgspec's ``message`` about a result (``encoded``) as the field, what it must be and the value it
    holds, escaped (``action.uri: must be a link ...; it is 'javascript:x'``) when the field failed a
    pattern, or what it must be when it is out of its bounds or of the wrong length (``title.en: must be
    at most 60 characters; it has 75``); any other problem as msgspec says it."""
    path, problem = split_message(message)
    words = pattern_problem(problem)
    if words is not None:
        value = value_at(msgspec.json.decode(encoded), path)
        held = f"; it is {echoed(value)}" if isinstance(value, str) else ""
        return f"{dotted(path) or 'the result'}: {words}{held}"
    if bound_problem(problem) is not None:  # the value decoded once known refused: a length counts it
        words = bound_problem(problem, value_at(msgspec.json.decode(encoded), path))
        return f"{dotted(path) or 'the result'}: {words}"
    return message


def check_list(hook: str, value: Any, *, max_items: int = 50, seen: Seen | None = None) -> list[Any]:
    """Return ``value`` as a validated list of the hook's result type, or raise :class:`ResultError`;
    ``seen``: the objects its plugin returned before (see :func:`_revalidate`).

    Only a ``list`` or ``tuple`` itself is accepted, judged by ``type``: a subclass's ``len`` or
    ``iter``, or a ``__class__`` property saying ``list``, could tell the cap one thing and the loop
    another. A list is copied once (in C, so at one instant) and the copy is counted and checked: a
    thread of the plugin that went on appending to the list it returned kept the check, and the event
    loop, following it past the cap for as long as the thread ran."""
    cls = LIST_RESULT_TYPES[hook]
    if value is None:
        return []
    kind = type(value)
    if kind is list:
        if len(value) <= max_items:  # a list's own len: counted first, a long one is never copied
            value = value[:]
    elif kind is not tuple:
        raise ResultError(f"{hook} must return a list of {cls.__name__} or None, got {kind.__name__}")
    if len(value) > max_items:
        raise ResultError(f"{hook} returned {len(value)} items; at most {max_items} are accepted")
    out = []
    for i, item in enumerate(value):
        if type(item) is not cls:
            raise ResultError(f"{hook} item {i} must be {cls.__name__}, got {type(item).__name__}")
        try:
            out.append(_revalidate(item, cls, seen))
        except msgspec.ValidationError as exc:
            raise ResultError(f"{hook} item {i} is invalid: {exc}") from None
    return out


def _check_one(hook: str, value: Any, cls: type[_S], seen: Seen | None = None) -> _S:
    """``value`` as a validated ``cls``, the one result ``hook`` returns, or raise :class:`ResultError`."""
    if type(value) is not cls:
        raise ResultError(f"{hook} must return {cls.__name__}, got {type(value).__name__}")
    try:
        return _revalidate(value, cls, seen)
    except msgspec.ValidationError as exc:
        raise ResultError(f"{hook} result is invalid: {exc}") from None


def check_transaction_result(value: Any, *, seen: Seen | None = None) -> TransactionResult:
    """Return ``value`` as a validated :class:`TransactionResult`, or raise :class:`ResultError`.

    The result is journaled and answered as JSON, so it must also encode (every result is checked so).
    """
    return _check_one("execute_transaction", value, TransactionResult, seen)


PAGE_PATH = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}")
"""A page path as plugins' deep links spell it: letters, digits, ``. _ - /``, 1–200 characters."""


PAGE_QUERY_KEY = re.compile(r"[A-Za-z0-9_.-]{1,40}")
"""A deep link's query parameter name."""
MAX_PAGE_QUERY = 20
"""At most this many query parameters, each value at most 200 characters."""


def page_query_problem(query: Mapping[str, str], *, sent: int | None = None) -> str | None:
    """Why the host would refuse ``query`` as a deep link's query parameters (a 400), or ``None``;
    ``sent`` counts the parameters as sent, repeats included (default: the names in ``query``)."""
    count = max(len(query), sent or 0)
    if count > MAX_PAGE_QUERY:
        return f"at most {MAX_PAGE_QUERY} query parameters, got {count}"
    for key, value in query.items():
        if not PAGE_QUERY_KEY.fullmatch(key):
            return f"query parameter {key[:40]!r}: names are 1–40 letters, digits, '_', '.' or '-'"
        if len(value) > 200 or not value.isprintable():
            return f"query parameter {key!r}: at most 200 printable characters"
    return None


def received_page_path(path: str) -> str:
    """``path`` as the host's page route reads it: slashes at either end do not count and repeated
    ones are one (its router's reading: ``report/`` and ``a//b`` open ``report`` and ``a/b``)."""
    return "/".join(part for part in path.split("/") if part)


def page_path_problem(path: str) -> str | None:
    """Why the host answers 400 to ``path`` (as :func:`received_page_path` reads it), or ``None``."""
    if is_page_path(path):
        return None
    return (
        "path must be 1–200 characters of letters, digits, '.', '_', '-' and '/', without '.' or '..' "
        "segments, as in the deep link fulcrum://<plugin>/<path>"
    )


def is_page_path(path: str) -> bool:
    """True when the host opens ``fulcrum://<plugin>/<path>`` as the plugin's page at ``path``: it
    matches :data:`PAGE_PATH` and has no empty, ``.`` or ``..`` segment (else the host answers 400)."""
    return PAGE_PATH.fullmatch(path) is not None and not any(
        part in ("", ".", "..") for part in path.split("/")
    )


def check_page(value: Any, *, seen: Seen | None = None) -> Page | None:
    """``value`` as a validated :class:`Page` (``None``: no page there), or raise :class:`ResultError`;
    its sections' keys must differ (a section is told apart by its key)."""
    if value is None:
        return None
    page = _check_one("page", value, Page, seen)
    keys: set[str] = set()
    for section in page.sections:
        if section.key in keys:
            raise ResultError(
                f"page result is invalid: two sections have the key {section.key!r}; give each section "
                "of a page its own key"
            )
        keys.add(section.key)
    return page


MAX_SEARCH_QUERY = 100
"""The longest search query the host passes on, in characters (after :func:`received_search_query`)."""

_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
"""Unicode categories a search never means: controls, format characters, surrogates, unassigned."""


def received_search_query(q: str | None) -> str:
    """The query as the host passes it to ``search``: in NFC, without control or invisible format
    characters (NUL, zero-width space) and surrounding space; ``ValueError`` (the host's 400) unless
    1–100 characters remain.

    NFC first, so one word typed in decomposed or composed form reaches plugins as one string and is
    counted the same."""
    composed = unicodedata.normalize("NFC", q or "")
    query = "".join(
        " " if unicodedata.category(c) == "Cc" else c  # a tab or newline still separates words
        for c in composed
        if unicodedata.category(c) not in _INVISIBLE or unicodedata.category(c) == "Cc"
    ).strip()
    if not query:
        raise ValueError("q must not be empty")
    if len(query) > MAX_SEARCH_QUERY:
        raise ValueError(f"q has {len(query)} characters; at most {MAX_SEARCH_QUERY} are allowed")
    return query


def account_fields_problem(tx_type: TransactionType) -> str | None:
    """Why ``tx_type``'s ``account_fields`` cannot work, or ``None``: a name the parameters do not have
    would leave an account id unchecked (and a partner's unmapped), so such a type is refused."""
    unknown = sorted(set(tx_type.account_fields) - set(tx_type.params.__struct_fields__))
    if not unknown:
        return None
    return (
        f"{tx_type.key}: account_fields {unknown} are not fields of {tx_type.params.__name__} "
        f"(fields: {', '.join(tx_type.params.__struct_fields__) or 'none'}); fix: name the fields that "
        "hold an account id"
    )


MAX_TRANSACTION_FEN = 500_000_000
"""The host's default platform-wide limit of one transaction, in fen (a deployment may set another)."""


def wire_name(params: type[msgspec.Struct], name: str) -> str:
    """The parameter ``name`` (an attribute of ``params``) as the client sends it: its JSON name when the
    Struct renames its fields (``rename="camel"``: ``amount_fen`` travels as ``amountFen``). What the
    host's refusals name, and the harness's alike; a name the Struct does not have is returned as is."""
    for field in msgspec.structs.fields(params):
        if field.name == name:
            return field.encode_name
    return name


def whole_fen(tx_type: TransactionType, params: Any) -> int | None:
    """The amount in fen named by the type's ``amount_field`` (``None``: a type that moves no money);
    ``ValueError`` when the parameters carry no whole number of fen there (the host refuses it: it would
    slip past the limits). The message names the parameter as the client sends it."""
    if not tx_type.amount_field:
        return None
    amount = getattr(params, tx_type.amount_field, None)
    if isinstance(amount, int) and not isinstance(amount, bool):
        return amount
    sent = wire_name(tx_type.params, tx_type.amount_field)
    if amount is None:
        raise ValueError(f"{sent} is required: the type moves money, the limits need it")
    raise ValueError(f"{sent} must be a whole number of fen")


_RISK_LEVELS = frozenset({"R1", "R2", "R3", "R4", "R5"})


class UnratedProductError(ValueError):
    """A request names a product whose risk level the type never declared: it is not sold."""

    def __init__(self, field: str, product: object) -> None:
        super().__init__(f"{field}: product {product!r:.80} has no declared risk level, so it cannot be sold")
        self.field = field


def rated_risk(tx_type: TransactionType, params: Any) -> RiskLevel:
    """The product risk of a request, as the host rates it: the type's fixed ``risk_level``, or the
    declared level of the product its ``product_field`` names (:class:`UnratedProductError` when that
    product has none). ``risk_of``, when given, must agree: ``TypeError`` when it answers anything
    else, and ``ValueError`` for a type stating no level (the host never registers one); the host
    refuses both as the plugin's fault. What ``risk_of`` raises (a ``TransactionRefused``) propagates."""
    if not tx_type.product_risks:
        if tx_type.risk_level is None:
            raise ValueError(f"{tx_type.key} states no product risk level")
        return tx_type.risk_level
    field = tx_type.product_field or ""
    product = getattr(params, field, None)
    level = tx_type.product_risks.get(product) if isinstance(product, str) else None
    if level is None:
        raise UnratedProductError(field, product)
    if tx_type.risk_of is not None:
        rated = tx_type.risk_of(params)
        if rated != level:
            shown = rated if rated is None or rated in _RISK_LEVELS else f"{rated!r:.40}"
            raise TypeError(f"risk_of rates product {product!r:.80} {shown}, its declared level is {level}")
    return level


def suitability_problem(
    risk: RiskLevel, profile: RiskProfile | None, today: date
) -> tuple[str, LocalizedText, dict[str, str]] | None:
    """Why the host refuses a product of ``risk`` to a customer with ``profile`` on ``today`` (the
    bank's date): a product above their tolerance, or any above R1 when their assessment is missing or
    expired, as ``(code, message, details)``; ``None`` when it does not. Every product has a level."""
    if risk == "R1":
        return None
    if profile is None:
        return "suitability.assessment_missing", LocalizedText(
            zh_CN=f"该产品风险等级为{risk}，请先完成风险承受能力评估。",
            en=f"This product is rated {risk}; complete the risk tolerance questionnaire first.",
        ), {"risk_level": risk}
    if profile.is_expired(today):
        expired = profile.expires_on.isoformat()
        return "suitability.assessment_expired", LocalizedText(
            zh_CN=f"您的风险承受能力评估已于{expired}过期，请重新评估后再购买{risk}级产品。",
            en=f"Your risk assessment expired on {expired}; redo it before buying {risk} products.",
        ), {"risk_level": risk, "expired_on": expired}
    if not risk_allows(profile.tolerance, risk):
        return "suitability.risk_too_high", LocalizedText(
            zh_CN=f"该产品风险等级{risk}高于您的风险承受能力{profile.tolerance}，不能购买。",
            en=f"This product is rated {risk}, above your risk tolerance {profile.tolerance}.",
        ), {"risk_level": risk, "risk_tolerance": profile.tolerance}
    return None
