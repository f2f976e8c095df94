"""Text in results that is no display text but still reaches the app, a receipt or a log: links, a
transaction result's code, targeting's segments, branch codes and locales. Each has a shape of its own,
ASCII, so a bidi control, a control character, a line separator or a look-alike letter cannot ride in it."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import msgspec
import pytest
from fulcrum_sdk._validate import ResultError, check_list, check_transaction_result
from fulcrum_sdk.models import Action, FeedItem, LocalizedText, SlotOffer, Targeting, TransactionResult

T = LocalizedText(zh_CN="标题")

GOOD_LINKS = [
    "fulcrum://pension/plans?tab=a%20b",
    "https://bank.example/a/b?q=%E5%85%BB%E8%80%81#top",
    "https://example.com/spring",
    "fulcrum://kit-probe/%E6%8A%A5",
    "https://user@bank.example:8443/~x/[a]!$&'()*+,;=",
]

BAD_LINKS = {
    "bidi override": "https://bank.example\u202e/moc.live",
    "C1 control": "https://bank.example/\x9b31m",
    "line separator": "https://bank.example/a\u2028b",
    "zero-width space": "https://bank\u200b.example/",
    "fullwidth letter": "https://ｂank.example/",
    "Cyrillic a": "https://b\u0430nk.example/",
    "Chinese path": "fulcrum://pension/报告",
    "space": "https://bank.example/a b",
    "DEL": "https://bank.example/\x7f",
    "newline at the end": "https://bank.example/a\n",
}


def _in_words(refused: pytest.ExceptionInfo[ResultError], field: str, must_be: str, value: str) -> None:
    """The refusal names the field, says what it must be in words and shows the value escaped, never a
    regular expression."""
    message = str(refused.value)
    assert f"is invalid: {field}: must be {must_be}" in message, message
    assert message.endswith(f"; it is {value!r}"), message
    assert "regex" not in message, message
    assert "(?!" not in message, message


def _offer(**changes: object) -> SlotOffer:
    offer = SlotOffer(slot="home.banner/v1", key="b", title=T, action=Action(uri="fulcrum://demo"))
    return msgspec.structs.replace(offer, **changes)


@pytest.mark.parametrize("uri", GOOD_LINKS)
def test_a_link_of_printable_ascii_passes(uri: str) -> None:
    """Percent-encoded text and every ASCII character RFC 3986 uses pass, as links and as images."""
    offer = _offer(action=Action(uri=uri), image=uri)
    assert check_list("home_slot_offers", [offer]) == [offer]


@pytest.mark.parametrize("uri", list(BAD_LINKS.values()), ids=list(BAD_LINKS))
@pytest.mark.parametrize("where", ["action.uri", "image"])
def test_a_link_holding_anything_but_printable_ascii_is_refused_naming_the_field(
    uri: str, where: str
) -> None:
    """A link that could be made to read as the bank's domain (an override, a look-alike letter, a
    zero-width space) or that breaks a line is invalid, naming the field; so is an item's image."""
    offer = _offer(action=Action(uri=uri)) if where == "action.uri" else _offer(image=uri)
    with pytest.raises(ResultError) as refused:
        check_list("home_slot_offers", [offer])
    _in_words(refused, where, "a link starting fulcrum:// or https://, then printable ASCII, no spaces", uri)
    item = FeedItem(key="f", column="wealth", kind="article", title=T, action=Action(uri="fulcrum://demo"),
                    published_at=datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(ResultError) as refused:
        check_list("feed_items", [msgspec.structs.replace(item, image=uri)])
    _in_words(refused, "image", "a link starting fulcrum:// or https://", uri)


def test_the_link_pattern_in_the_json_schema_says_printable_ascii() -> None:
    """The published schema carries the same pattern, readable by an ECMAScript regex."""
    _, defs = msgspec.json.schema_components([Action])
    pattern = defs["Action"]["properties"]["uri"]["pattern"]
    assert pattern == "^(fulcrum|https)://[!-~]+(?!\\n)$"
    assert re.search(pattern, "https://bank.example/")
    assert not re.search(pattern, "https://bank.example\u202e/")


@pytest.mark.parametrize(
    "code", ["shop.declined", "pension.annual_cap_exceeded", "city-coupons.sold_out", "E1001", "acct:closed"]
)
def test_a_machine_code_passes(code: str) -> None:
    """Codes as plugins write them: dotted, with the plugin id's hyphens, or a backend's own."""
    result = TransactionResult(status="failed", code=code, message=T)
    assert check_transaction_result(result) == result


@pytest.mark.parametrize(
    "code",
    ["shop.\u202edeclined", "shop.declined\n", "shop declined", "shop.\u2028x", "shop.\x1b[31m", "店铺.拒绝",
     ".declined", ""],
)
def test_a_code_holding_anything_but_a_key_is_refused_naming_the_field(code: str) -> None:
    """The code is journaled, answered as the problem's ``code`` and logged: a key, not text."""
    with pytest.raises(ResultError) as refused:
        check_transaction_result(TransactionResult(status="failed", code=code, message=T))
    _in_words(refused, "code", "1 to 128 ASCII letters, digits and '.', '_', ':' or '-', starting with", code)


@pytest.mark.parametrize(
    ("field", "good"),
    [
        ("segments", ["mass", "affluent", "private", "young_professional", "S1"]),
        ("branches", ["0755", "021", "028", "hq", "sz-nanshan"]),
        ("locales", ["zh-CN", "en", "en-US", "zh-Hans-CN"]),
    ],
)
def test_targeting_names_of_their_own_shape_pass(field: str, good: list[str]) -> None:
    offer = _offer(targeting=Targeting(**{field: frozenset(good)}))
    assert check_list("home_slot_offers", [offer]) == [offer]


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("segments", "mass\u202e"), ("segments", "ma ss"), ("segments", "富裕"), ("segments", "mass\n"),
        ("segments", ""), ("branches", "0755\u2028"), ("branches", "07\x0055"), ("branches", "SZ"),
        ("branches", "深圳"), ("locales", "zh_CN"), ("locales", "zh-CN\u200b"), ("locales", "中文"),
        ("locales", "en\n"), ("locales", "e"),
    ],
)
def test_a_targeting_name_not_of_its_shape_is_refused_naming_the_field(field: str, bad: str) -> None:
    """Segment, branch code and locale: what a bank names them, nothing a log or a review could misread."""
    offer = _offer(targeting=Targeting(**{field: frozenset({bad})}))
    with pytest.raises(ResultError) as refused:
        check_list("home_slot_offers", [offer])
    must_be = {"segments": "a segment name", "branches": "a branch code", "locales": "a language tag"}[field]
    _in_words(refused, f"targeting.{field}.0", must_be, bad)


def test_a_result_out_of_its_bounds_is_refused_in_words() -> None:
    """A partner's result refused for a bound or a length read ``Expected `int` <= 1000`` and ``Expected
    `str` of length <= 2048``: it says what the field must be, and how long the text it sent is."""
    with pytest.raises(ResultError) as refused:
        check_list("home_slot_offers", [_offer(priority=1001)])
    assert str(refused.value).endswith("is invalid: priority: must be at most 1000"), refused.value
    link = "https://bank.example/" + "a" * 2030
    with pytest.raises(ResultError) as refused:
        check_list("home_slot_offers", [_offer(action=Action(uri=link))])
    assert str(refused.value).endswith(
        "is invalid: action.uri: must be at most 2048 characters; it has 2051"
    ), refused.value
