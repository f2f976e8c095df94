"""Through the host: a plugin whose link, image or targeting holds a bidi control, a control character,
or a look-alike letter is degraded as for any invalid result, and its log line names
the field; the other plugins' items still show."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fulcrum_sdk import nonblocking
from fulcrum_sdk.models import Action, Targeting
from msgspec.structs import replace

pytestmark = pytest.mark.both_loops


class _Seen(logging.Handler):
    """The messages logged where it is added (the host's own logging setup does not reach caplog)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


_LINK = "a link starting fulcrum:// or https://"


@pytest.mark.parametrize(
    ("where", "must_be", "sent", "change"),
    [
        ("action.uri", _LINK, "https://bank.example\u202e/moc.live",
         {"action": Action(uri="https://bank.example\u202e/moc.live")}),
        ("action.uri", _LINK, "https://ｂank.example/", {"action": Action(uri="https://ｂank.example/")}),
        ("image", _LINK, "https://bank.example/a\x9b31mb.png", {"image": "https://bank.example/a\x9b31mb.png"}),
        ("targeting.segments.0", "a segment name", "mass\u202e",
         {"targeting": Targeting(segments=frozenset({"mass\u202e"}))}),
        ("targeting.branches.0", "a branch code", "0755\x85",
         {"targeting": Targeting(branches=frozenset({"0755\x85"}))}),
        ("targeting.locales.0", "a language tag", "zh-CN\n",
         {"targeting": Targeting(locales=frozenset({"zh-CN\n"}))}),
    ],
    ids=["override-in-link", "fullwidth-link", "c1-control-in-image", "segment", "branch", "locale"],
)
def test_a_plugin_handing_out_such_text_is_degraded_naming_the_field(
    make_app: Any, kit: Any, where: str, must_be: str, sent: str, change: dict[str, Any]
) -> None:
    """The log line says, in words, the field, what it must be and the value it held, escaped (a bidi
    override as ``\\u202e``): never msgspec's regular expression."""
    good = kit.offer("home.banner", "b1")
    odd = replace(kit.offer("home.banner", "b2"), **change)
    app = make_app(
        kit.plugin("good", home_slot_offers=nonblocking(lambda ctx: [good])),
        kit.plugin("odd", home_slot_offers=nonblocking(lambda ctx: [odd])),
    )
    logger, seen = logging.getLogger("fulcrum.dispatch"), _Seen()
    logger.addHandler(seen)
    try:
        body = app.get("/v1/home").json()
    finally:
        logger.removeHandler(seen)
    assert {d["plugin"]: d["reason"] for d in body["degraded"]} == {"odd": "invalid"}
    assert [(i["plugin"], i["key"]) for i in body["slots"]["home.banner/v1"]] == [("good", "b1")]
    lines = [m for m in seen.messages if "'odd'" in m]
    said = f"home_slot_offers item 0 is invalid: {where}: must be {must_be}"
    assert [m for m in lines if said in m and f"; it is {sent!r}" in m], lines
    assert not [m for m in lines if "regex" in m], lines
