"""The client's name the consent page falls back to is display text too: a plugin's client took its name
from a release approved before display text was checked, and the page shows it where no manifest is."""

from __future__ import annotations

from fulcrum_core.oauth.authorize import ConsentPrompt
from fulcrum_core.oauth.clients import OAuthClient
from fulcrum_core.oauth.consent_page import render_consent_page


def _client(name_zh: str, name_en: str | None) -> OAuthClient:
    return OAuthClient(
        client_id="plugin-city-coupons", kind="plugin", name_zh=name_zh, name_en=name_en,
        plugin_id="city-coupons", auth_method="private_key_jwt", secret_hash=None, jwks={"keys": []},
        redirect_uris=("https://coupons.example/cb",), grant_types=frozenset({"authorization_code"}),
        scopes=frozenset({"profile:basic"}), active=True,
    )


def _page(client: OAuthClient) -> str:
    prompt = ConsentPrompt(client=client, scopes=("profile:basic",), params={"client_id": client.client_id})
    return render_consent_page(
        prompt, action="/oauth/authorize", customers=[], csrf_token="t", signed_in="c1"
    )


def test_a_client_name_that_would_read_reversed_is_not_shown() -> None:
    """Without a manifest to name the plugin, a client name holding a bidi override or a control character
    is not shown: the page names the plugin by its id, as a client without a name."""
    page = _page(_client("城市优惠券 \u202e行银", "City \u202eknab coupons"))
    assert "\u202e" not in page
    assert "行银" not in page
    assert "knab" not in page
    assert "插件 city-coupons" in page
    assert "plugin-city-coupons" in page


def test_a_client_name_in_chinese_with_marks_is_shown() -> None:
    """A name of ordinary text (full-width punctuation, an LRM) is shown as it is."""
    page = _page(_client("城市优惠券（深圳）\u200e", "City Coupons (Shenzhen)"))
    assert "城市优惠券（深圳）\u200e" in page
    assert "City Coupons (Shenzhen)" in page
