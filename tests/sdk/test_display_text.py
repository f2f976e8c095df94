"""Display text cannot spoof the app: bidi controls, control characters and line separators are refused
in every text a customer or a reviewer reads, naming the field and the character, on the host and in
the harness alike; Chinese, emoji sequences and the LRM/RLM marks pass."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from fulcrum_sdk import hookimpl
from fulcrum_sdk._validate import ResultError, check_list, check_page, check_transaction_result
from fulcrum_sdk.display import display_text_problem, find_display_problem
from fulcrum_sdk.manifest import Manifest
from fulcrum_sdk.models import (
    Action,
    FeedItem,
    LocalizedText,
    Page,
    PageLine,
    PageSection,
    SearchHit,
    SlotOffer,
    TransactionResult,
    TransactionType,
)
from fulcrum_sdk.testing import PluginHarness

GO = Action(uri="fulcrum://demo")
T = LocalizedText(zh_CN="标题")
RLO = "\u202e"
SPOOF = "转账 ¥" + RLO + "001"
"""Reads "转账 ¥100" in the app while it holds 001."""
MESSAGE = "title.zh-CN: U+202E RIGHT-TO-LEFT OVERRIDE at index 4 is not allowed in display text"

ALLOWED = [
    "转账 ¥100",
    "家庭 👨\u200d👩\u200d👧 理财",  # ZWJ joins an emoji sequence
    "شركة\u200e ABC",  # LRM keeps the Latin run after Arabic in order
    "עברית\u200f 123",  # RLM
    "国旗 🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f",  # tag characters of a flag
    "零\u200b宽",  # a zero-width space is a line-break opportunity, not a reordering
    "é, 한국어, ١٢٣",
]

REFUSED = [
    ("\u202a", "U+202A LEFT-TO-RIGHT EMBEDDING"),
    ("\u202b", "U+202B RIGHT-TO-LEFT EMBEDDING"),
    ("\u202c", "U+202C POP DIRECTIONAL FORMATTING"),
    ("\u202d", "U+202D LEFT-TO-RIGHT OVERRIDE"),
    ("\u202e", "U+202E RIGHT-TO-LEFT OVERRIDE"),
    ("\u2066", "U+2066 LEFT-TO-RIGHT ISOLATE"),
    ("\u2067", "U+2067 RIGHT-TO-LEFT ISOLATE"),
    ("\u2068", "U+2068 FIRST STRONG ISOLATE"),
    ("\u2069", "U+2069 POP DIRECTIONAL ISOLATE"),
    ("\u2028", "U+2028 LINE SEPARATOR"),
    ("\u2029", "U+2029 PARAGRAPH SEPARATOR"),
    ("\x00", "U+0000 NULL"),
    ("\t", "U+0009 CHARACTER TABULATION"),
    ("\n", "U+000A LINE FEED"),
    ("\r", "U+000D CARRIAGE RETURN"),
    ("\x1b", "U+001B ESCAPE"),
    ("\x7f", "U+007F DELETE"),
    ("\x85", "U+0085 NEXT LINE"),
    ("\x9b", "U+009B CONTROL CHARACTER"),
    ("\x01", "U+0001 CONTROL CHARACTER"),
    ("\u206e", "U+206E NATIONAL DIGIT SHAPES"),
    ("\ufff9", "U+FFF9 INTERLINEAR ANNOTATION ANCHOR"),
]


@pytest.mark.parametrize("text", ALLOWED)
def test_ordinary_text_passes(text: str) -> None:
    """Chinese, other scripts, emoji with ZWJ, LRM and RLM are ordinary display text."""
    assert display_text_problem(text) is None
    offer = SlotOffer(slot="home.banner/v1", key="b", title=LocalizedText(zh_CN=text, en=text), action=GO)
    assert check_list("home_slot_offers", [offer]) == [offer]


@pytest.mark.parametrize(("char", "named"), REFUSED, ids=[named for _, named in REFUSED])
def test_each_refused_character_is_named_with_its_index(char: str, named: str) -> None:
    """The problem names the code point, its Unicode name and where it is."""
    assert display_text_problem("ab" + char + "c") == f"{named} at index 2 is not allowed in display text" + (
        "; only a summary or a description may break lines" if char == "\n" else ""
    )
    # The result check scans the value's JSON for such characters before it walks the fields: each is
    # found there, however msgspec writes it (escaped or as its UTF-8 bytes).
    offer = SlotOffer(slot="home.banner/v1", key="b", title=T, action=GO,
                      subtitle=LocalizedText(zh_CN="限时", en="ab" + char + "c"))
    with pytest.raises(ResultError, match=re.escape(f"subtitle.en: {named} at index 2")):
        check_list("home_slot_offers", [offer])


def test_a_line_feed_is_allowed_in_a_summary_or_description_only() -> None:
    """A body (a summary, a description) may hold paragraphs; a title, a label or a name is one line. A
    carriage return is refused even there: a line break is written one way."""
    assert display_text_problem("一段\n二段", body=True) is None
    assert display_text_problem("一段\r\n二段", body=True) == (
        "U+000D CARRIAGE RETURN at index 2 is not allowed in display text"
    )
    assert display_text_problem("一段\u2029二段", body=True) is not None
    item = FeedItem(key="f", column="wealth", kind="article", title=T, action=GO,
                    published_at=datetime.now(UTC), summary=LocalizedText(zh_CN="一段\n二段"))
    assert check_list("feed_items", [item]) == [item]
    one_line = r"feed_items item 0 is invalid: title\.en: U\+000A LINE FEED at index 1"
    with pytest.raises(ResultError, match=one_line):
        check_list("feed_items", [msgspec.structs.replace(item, title=LocalizedText(zh_CN="一", en="a\nb"))])


def test_a_banner_title_with_an_override_is_refused_naming_field_and_character() -> None:
    """The result check the host and the harness share says which field and which character."""
    offer = SlotOffer(slot="home.banner/v1", key="b", title=LocalizedText(zh_CN=SPOOF), action=GO)
    with pytest.raises(ResultError) as refused:
        check_list("home_slot_offers", [offer])
    assert str(refused.value) == f"home_slot_offers item 0 is invalid: {MESSAGE}"
    with pytest.raises(ResultError, match="RIGHT-TO-LEFT OVERRIDE"):  # refused again, never memoized
        check_list("home_slot_offers", [offer])


@pytest.mark.parametrize(
    ("value", "check", "path"),
    [
        (SlotOffer(slot="home.popup/v1", key="p", title=T, subtitle=LocalizedText(zh_CN="x", en=RLO),
                   action=GO), "home_slot_offers", "subtitle.en"),
        (SearchHit(key="h", kind="product", title=T, subtitle=LocalizedText(zh_CN=RLO), action=GO),
         "search", "subtitle.zh-CN"),
        (FeedItem(key="f", column="wealth", kind="article", title=T, summary=LocalizedText(zh_CN=RLO),
                  action=GO, published_at=datetime(2026, 1, 1, tzinfo=UTC)), "feed_items", "summary.zh-CN"),
        (Page(title=T, sections=(PageSection(key="a", title=T),
                                 PageSection(key="b", title=T, lines=(PageLine(label=T),
                                                                     PageLine(label=T, note=LocalizedText(
                                                                         zh_CN=RLO))))),), "page",
         "sections[1].lines[1].note.zh-CN"),
        (Page(title=T, summary=LocalizedText(zh_CN="\u2028")), "page", "summary.zh-CN"),
        (TransactionResult(status="failed", message=LocalizedText(zh_CN=RLO)), "tx", "message.zh-CN"),
        (TransactionResult(status="succeeded", reference="R" + RLO), "tx", "reference"),
        (TransactionResult(status="succeeded", data={"到账": "¥" + RLO, "n": 1}), "tx", "data.到账"),
        (TransactionResult(status="succeeded", data={"k" + RLO: "v"}), "tx", "data: key 'k\\u202e'"),
    ],
    ids=["offer-subtitle", "hit-subtitle", "feed-summary", "page-line-note", "page-summary",
         "tx-message", "tx-reference", "tx-data-value", "tx-data-key"],
)
def test_every_display_field_of_every_result_is_checked(value: Any, check: str, path: str) -> None:
    """Subtitles, summaries, a page's nested lines, a transaction result's message and receipt fields."""
    checks = {"page": check_page, "tx": check_transaction_result}
    run = checks.get(check) or (lambda value: check_list(check, [value]))
    with pytest.raises(ResultError, match=re.escape(f"is invalid: {path}: U+")):
        run(value)


def test_no_localized_text_field_escapes_the_check() -> None:
    """Every field holding LocalizedText in a result or a manifest is walked, named by its wire name: one
    added later is checked without anyone listing it."""
    for cls, sample in _SAMPLES.items():
        for field in msgspec.structs.fields(cls):
            if "LocalizedText" not in str(cls.__annotations__.get(field.name, "")):
                continue
            spoofed = msgspec.structs.replace(sample, **{field.name: LocalizedText(zh_CN=RLO)})
            found = find_display_problem(spoofed)
            assert found is not None, f"{cls.__name__}.{field.name} is not checked"
            assert found[0] == f"{field.encode_name}.zh-CN"


_SAMPLES: dict[type[msgspec.Struct], Any] = {
    SlotOffer: SlotOffer(slot="home.banner/v1", key="b", title=T, action=GO),
    SearchHit: SearchHit(key="h", kind="product", title=T, action=GO),
    FeedItem: FeedItem(key="f", column="wealth", kind="article", title=T, action=GO,
                       published_at=datetime(2026, 1, 1, tzinfo=UTC)),
    Page: Page(title=T),
    PageSection: PageSection(key="s", title=T),
    PageLine: PageLine(label=T),
    TransactionResult: TransactionResult(status="succeeded"),
    Manifest: msgspec.convert(
        {"id": "demo-plugin", "publisher": "test-bank", "kind": "department", "sdk": ">=0.1,<1", "hooks": [],
         "name": {"zh-CN": "演示"}, "description": {"zh-CN": "演示"},
         "owner": {"name": "Demo", "email": "demo@example.com"}},
        Manifest,
    ),
}


class _Params(msgspec.Struct, frozen=True):
    amount_fen: int


class _Spoofing:
    """A plugin whose banner title reads one amount and holds another."""

    @hookimpl
    def home_slot_offers(self, ctx: Any) -> list[SlotOffer]:
        return [SlotOffer(slot="home.banner/v1", key="b", title=LocalizedText(zh_CN=SPOOF), action=GO)]

    @hookimpl
    def register_transaction_types(self, register: Any) -> None:
        register(TransactionType(key="demo.pay", name=LocalizedText(zh_CN="付款", en="Pay" + "\u2066"),
                                 params=_Params, risk_level="R1", amount_field="amount_fen"))


def _manifest() -> Manifest:
    return msgspec.convert(
        {"id": "demo-plugin", "publisher": "test-bank", "kind": "department", "sdk": ">=0.1,<1",
         "hooks": ["home_slot_offers", "register_transaction_types", "execute_transaction"],
         "slots": ["home.banner/v1"],
         "transaction_types": {"demo.pay": {"risk_level": "R1", "amount_field": "amount_fen"}},
         "name": {"zh-CN": "演示"}, "description": {"zh-CN": "演示"},
         "owner": {"name": "Demo", "email": "demo@example.com"},
         "scopes": {"required": {"slot:home.banner": "首页横幅", "transactions:write": "在您确认后付款"}}},
        Manifest,
    )


def test_the_harness_refuses_it_in_the_same_words() -> None:
    """A partner's own tests fail where the host would leave the plugin out."""
    harness = PluginHarness(_Spoofing(), manifest=_manifest())
    with pytest.raises(ResultError) as refused:
        harness.home_slot_offers()
    assert str(refused.value) == f"home_slot_offers item 0 is invalid: {MESSAGE}"


def test_a_transaction_type_name_is_display_text_too() -> None:
    """The host refuses a type whose name or description would spoof the app; the harness says why."""
    harness = PluginHarness(_Spoofing(), manifest=_manifest())
    with pytest.raises(ResultError, match=(
        r"the host refuses this type: demo\.pay: name\.en: U\+2066 LEFT-TO-RIGHT ISOLATE at index 3 is not "
        "allowed in display text"
    )):
        harness.execute("demo.pay", {"amount_fen": 1})


class _Notice(msgspec.Struct, frozen=True):
    """A type no check has looked at yet in this process: its fields are worked out on first use."""

    title: LocalizedText


def test_a_check_while_another_thread_works_out_the_type_still_finds_the_character(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fields to look at are worked out once per type; a check in another thread meanwhile (two
    registry submissions, two consent pages) waits for them instead of taking the type as holding no
    display text and passing a bidi override."""
    import threading

    import fulcrum_sdk.display as display

    spoof = _Notice(title=LocalizedText(zh_CN="转账 ¥\u202e001"))
    found: list[object] = []
    others: list[threading.Thread] = []
    hints = display.get_type_hints

    def meanwhile(cls: Any, **kwargs: Any) -> Any:
        if cls is _Notice and not found:
            found.append("started")
            other = threading.Thread(target=lambda: found.append(find_display_problem(spoof)))
            others.append(other)
            other.start()
            other.join(0.5)  # it ends at once while the type looks worked out, else waits for this one
        return hints(cls, **kwargs)

    monkeypatch.setattr(display, "get_type_hints", meanwhile)
    assert find_display_problem(spoof) is not None
    others[0].join()
    named = "U+202E RIGHT-TO-LEFT OVERRIDE at index 4 is not allowed in display text"
    assert found[1:] == [("title.zh-CN", named)]
