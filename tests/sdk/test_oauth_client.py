"""The manifest's ``[oauth]`` table: a partner's public signing keys and its redirect URIs, checked
before a reviewer sees them."""

from __future__ import annotations

from typing import Any

import pytest
from fulcrum_sdk.errors import ManifestError
from fulcrum_sdk.manifest import parse_manifest, semantic_problems
from fulcrum_sdk.oauth_client import Jwks, OAuthClient, key_fingerprint, oauth_problems

BASE = """
id = "coupons"
publisher = "city-coupons"
kind = "{kind}"
sdk = ">=0.1"
hooks = ["home_slot_offers"]
slots = ["home.banner/v1"]
name = {{ zh-CN = "优惠", en = "Coupons" }}
description = {{ zh-CN = "本地优惠", en = "Local deals" }}
owner = {{ name = "Ops", email = "ops@coupons.example" }}
[scopes.required]
"slot:home.banner" = "shows a banner"
"""

OAUTH = """
[oauth]
redirect_uris = ["https://coupons.example/fulcrum/callback", "http://127.0.0.1:8765/callback"]
[[oauth.jwks.keys]]
kty = "EC"
crv = "P-256"
kid = "2026-11"
x = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"
y = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
"""

# RFC 7517's example P-256 key (public part).
X, Y = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
EC = {"kty": "EC", "crv": "P-256", "kid": "a", "x": X, "y": Y}
WEAK_RSA = {"kty": "RSA", "kid": "r", "e": "AQAB", "n": "w" * 86}  # 512 bits


def test_a_partner_declares_its_keys_and_redirect_uris() -> None:
    """A well-formed table parses into typed fields and raises no problem."""
    manifest = parse_manifest(BASE.format(kind="partner") + OAUTH, file="m.toml")
    assert manifest.oauth is not None
    assert manifest.oauth.redirect_uris[0] == "https://coupons.example/fulcrum/callback"
    assert manifest.oauth.jwks is not None
    assert manifest.oauth.jwks.as_dict()["keys"][0]["kid"] == "2026-11"
    assert semantic_problems(manifest) == []


def test_unknown_keys_in_the_table_are_refused() -> None:
    """A misspelt key is an error naming it, not silently ignored."""
    misspelt = BASE.format(kind="partner") + '[oauth]\nredirect_uri = ["https://x.example/cb"]\n'
    with pytest.raises(ManifestError) as refused:
        parse_manifest(misspelt, file="m")
    assert refused.value.key == "oauth.redirect_uri"
    assert str(refused.value).endswith("; did you mean redirect_uris?")


@pytest.mark.parametrize(
    ("key", "where", "says"),
    [
        ({**EC, "d": "secret"}, "oauth.jwks.keys.0", "private key members (d)"),
        ({"kty": "oct", "k": "secret", "kid": "a"}, "oauth.jwks.keys.0.kty", "must be one of EC, RSA, OKP"),
        ({k: v for k, v in EC.items() if k != "kid"}, "oauth.jwks.keys.0.kid", "needs a kid"),
        ({k: v for k, v in EC.items() if k != "y"}, "oauth.jwks.keys.0", "needs y"),
        ({**EC, "use": "enc"}, "oauth.jwks.keys.0.use", "use must be 'sig'"),
        ({**EC, "y": X}, "oauth.jwks.keys.0", "the point is not on P-256"),
        ({**EC, "crv": "secp256k1"}, "oauth.jwks.keys.0", "use one of P-256, P-384, P-521"),
        ({"kty": "OKP", "crv": "X25519", "kid": "o", "x": X}, "oauth.jwks.keys.0", "only Ed25519"),
        (WEAK_RSA, "oauth.jwks.keys.0", "512 bits is too weak"),
        ({**WEAK_RSA, "n": "w" * 342, "e": "AQ"}, "oauth.jwks.keys.0", "e = 1 is not a usable RSA exponent"),
        ({**EC, "alg": "HS256"}, "oauth.jwks.keys.0.alg", "'HS256' does not sign with this key; use ES256"),
        ({**EC, "x5u": "https://evil.example/k"}, "oauth.jwks.keys.0", "unknown members x5u"),
        ({**EC, "kty": ["EC"]}, "oauth.jwks.keys.0.kty", "must be one of EC, RSA, OKP"),
    ],
)
def test_bad_keys_are_named(key: dict[str, Any], where: str, says: str) -> None:
    """Private members, symmetric keys, a missing kid or public member, or an encryption key."""
    problems = oauth_problems(OAuthClient(jwks=Jwks(keys=(key,))), kind="partner")
    assert any(k == where and says in p for k, p in problems), problems


# RFC 8037's example Ed25519 key (public part).
ED25519 = {"kty": "OKP", "crv": "Ed25519", "kid": "e", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}


@pytest.mark.parametrize("alg", ["Ed25519", "EdDSA"])
def test_an_ed25519_key_may_name_its_algorithm_either_way(alg: str) -> None:
    """RFC 9864 names the algorithm ``Ed25519`` and the token endpoint accepts it, but the manifest
    check wanted ``EdDSA`` alone: a key published with the RFC's name was refused at review."""
    assert oauth_problems(OAuthClient(jwks=Jwks(keys=({**ED25519, "alg": alg},))), kind="partner") == []


def test_an_ed25519_key_naming_another_algorithm_is_told_both_names() -> None:
    problems = oauth_problems(OAuthClient(jwks=Jwks(keys=({**ED25519, "alg": "ES256"},))), kind="partner")
    assert problems == [
        ("oauth.jwks.keys.0.alg", "'ES256' does not sign with this key; use Ed25519 or EdDSA")
    ]


def test_two_keys_with_one_kid_are_refused() -> None:
    """Clients name the key they signed with by kid, so kids are unique."""
    problems = oauth_problems(OAuthClient(jwks=Jwks(keys=(EC, EC))), kind="partner")
    assert problems == [("oauth.jwks.keys.1.kid", "kid 'a' is used by another key")]


def test_only_partners_sign_with_keys() -> None:
    """An internal plugin gets a secret; keys in its manifest are a mistake."""
    problems = oauth_problems(OAuthClient(jwks=Jwks(keys=(EC,))), kind="department")
    assert problems == [("oauth.jwks", "only partner plugins sign with keys; internal plugins get a secret")]
    empty = oauth_problems(OAuthClient(jwks=Jwks(keys=())), kind="partner")
    assert empty == [("oauth.jwks.keys", "lists no key")]


@pytest.mark.parametrize(
    "uri",
    [
        "http://coupons.example/cb",  # plain http off the loopback interface
        "https://coupons.example/cb#frag",
        "https://*.coupons.example/cb",
        "coupons-app:/cb",
        "/relative/cb",
        "https://coupons.example/cb x",
        "https://coupons.example/cb\t",
        "https://good.example@evil.example/cb",
        "HTTPS://coupons.example/cb",
        "https://coupons.example:99999/cb",
        "https://coupons\u202e.example/cb",
        "https://ｃoupons.example/cb",
    ],
)
def test_redirect_uris_must_be_exact_https_urls(uri: str) -> None:
    """https with a host, or http on loopback; no fragment, no wildcard, nothing relative."""
    ((where, problem),) = oauth_problems(OAuthClient(redirect_uris=(uri,)), kind="partner")
    assert where == "oauth.redirect_uris.0"
    assert problem.startswith(repr(uri))


def test_a_redirect_uri_listed_twice_is_refused() -> None:
    """Exact strings: the same one twice is a copy-paste slip."""
    uri = "https://coupons.example/cb"
    assert oauth_problems(OAuthClient(redirect_uris=(uri, uri)), kind="partner") == [
        ("oauth.redirect_uris.1", f"{uri!r} is listed twice")
    ]


def test_the_registry_checks_see_the_tables_problems() -> None:
    """semantic_problems (what `fulcrum plugin check` and the registry's submit checks run) includes them."""
    manifest = parse_manifest(BASE.format(kind="department") + OAUTH, file="m.toml")
    assert [p.key for p in semantic_problems(manifest)] == ["oauth.jwks"]


def test_a_key_is_fingerprinted_by_its_material_not_only_its_kid() -> None:
    """Swapping the key under the same kid changes its fingerprint (what the review diff compares)."""
    other = {**EC, "x": Y, "y": X}
    assert key_fingerprint(EC).startswith("a (")
    assert key_fingerprint(EC) != key_fingerprint(other)
    assert key_fingerprint(EC) == key_fingerprint({**EC, "use": "sig"})  # thumbprints cover key material only
