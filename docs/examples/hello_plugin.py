"""A toy plugin: one kingkong icon that greets the customer in their own branch's city."""

from fulcrum_sdk import Action, LocalizedText, PluginContext, SlotOffer, hookimpl
from fulcrum_sdk.manifest import parse_manifest

MANIFEST = parse_manifest(
    """
    id = "hello"
    publisher = "example-dept"
    kind = "department"
    sdk = ">=0.2,<0.3"
    hooks = ["home_slot_offers"]
    slots = ["home.kingkong/v1"]
    name = { "zh-CN" = "你好", en = "Hello" }
    description = { "zh-CN" = "问候客户", en = "Greets the customer" }
    owner = { name = "Example team", email = "team@example.com" }
    [scopes.required]
    "slot:home.kingkong" = "shows one greeting icon on the home page"
    "location:city" = "greets the customer in their city"
    """,
    file="hello/fulcrum-plugin.toml",
    version="0.1.0",
)


@hookimpl
async def home_slot_offers(ctx: PluginContext) -> list[SlotOffer]:
    """One icon; the city comes through the scoped data accessor, never straight from the bank."""
    city = ctx.data.city()
    where = city.name if city else LocalizedText(zh_CN="您身边", en="near you")
    return [
        SlotOffer(
            slot="home.kingkong/v1",
            key="hello",
            title=LocalizedText(zh_CN=f"你好，{where.zh_CN}", en=f"Hello, {where.en or where.zh_CN}"),
            action=Action(uri="fulcrum://hello"),
        )
    ]


if __name__ == "__main__":
    import sys

    from fulcrum_sdk.testing import PluginHarness

    harness = PluginHarness(sys.modules[__name__], manifest=MANIFEST, persona="young_family")
    for offer in harness.home_slot_offers():
        print(offer.slot, offer.title.zh_CN, "/", offer.title.en)  # noqa: T201 - the example prints
