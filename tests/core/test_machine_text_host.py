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


@pytest.mark.parametrize(
    ("where", "change"),
    [
        ("action.uri", {"action": Action(uri="https://bank.example\u202e/moc.live")}),
        ("action.uri", {"action": Action(uri="https://ｂank.example/")}),
        ("image", {"image": "https://bank.example/a\x9b31mb.png"}),
        ("targeting.segments[0]", {"targeting": Targeting(segments=frozenset({"mass\u202e"}))}),
        ("targeting.branches[0]", {"targeting": Targeting(branches=frozenset({"0755\x85"}))}),
        ("targeting.locales[0]", {"targeting": Targeting(locales=frozenset({"zh-CN\n"}))}),
    ],
    ids=["override-in-link", "fullwidth-link", "c1-control-in-image", "segment", "branch", "locale"],
)
def test_a_plugin_handing_out_such_text_is_degraded_naming_the_field(
    make_app: Any, kit: Any, where: str, change: dict[str, Any]
) -> None:
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
    assert any("home_slot_offers item 0 is invalid" in m and f"- at `$.{where}`" in m for m in lines), lines
