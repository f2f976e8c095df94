"""TokenService: RFC 9068 access tokens issued and verified, and every way a bad token is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from fulcrum_core.auth.claims import AccessTokenClaims
from fulcrum_core.auth.keys import KeyStore
from fulcrum_core.auth.principal import Principal
from fulcrum_core.auth.tokens import MAX_TOKEN_BYTES, TokenService
from fulcrum_core.errors import Unauthorized
from fulcrum_core.settings import load_settings
from joserfc import jws
from joserfc.jwk import ECKey, RSAKey

ISSUER = "https://fulcrum.test"
AUDIENCE = "fulcrum-app"


class FakeClock:
    """A settable wall clock, so expiry is tested without sleeping."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    """The clock every service in a test shares."""
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    """A key store in a fresh state_dir."""
    return KeyStore.open(tmp_path)


@pytest.fixture
def svc(store: KeyStore, clock: FakeClock) -> TokenService:
    """The service under test: 300 s maximum lifetime, 5 s leeway."""
    return TokenService(store, issuer=ISSUER, audience=AUDIENCE, max_ttl_seconds=300, clock=clock)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _claims(clock: FakeClock, **overrides: Any) -> dict[str, Any]:
    now = int(clock.now)
    claims: dict[str, Any] = {
        "iss": ISSUER, "sub": "c-1", "aud": AUDIENCE, "exp": now + 60, "iat": now, "jti": "j-1",
        "client_id": "fulcrum-dev", "scope": "home:read", "fulcrum_kind": "customer",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(store: KeyStore, claims: dict[str, Any], **header: Any) -> str:
    """A token signed with *our* current key but with chosen claims and header."""
    key = store.signing_key()
    hdr = {"alg": key.alg, "typ": "at+jwt", "kid": key.kid, **header}
    hdr = {k: v for k, v in hdr.items() if v is not None}
    return jws.serialize_compact(hdr, json.dumps(claims).encode(), key, algorithms=[hdr.get("alg", "ES256")])


def _code(svc: TokenService, token: str, **kwargs: Any) -> str:
    with pytest.raises(Unauthorized) as info:
        svc.verify(token, **kwargs)
    assert info.value.status == 401
    return info.value.code


# -- issuing -----------------------------------------------------------------------------------


def test_issued_token_is_an_rfc9068_access_token(svc: TokenService, clock: FakeClock) -> None:
    """The header says at+jwt with our alg and kid; the claims carry iss, sub, aud, exp, iat, jti,
    client_id, the sorted space-separated scope and the principal kind."""
    token = svc.issue("c-0755-001", ["search:read", "home:read", "home:read"], client_id="mobile-app")
    header, claims = _unb64(token.split(".")[0]), _unb64(token.split(".")[1])
    assert header == {"alg": "ES256", "typ": "at+jwt", "kid": svc.keys.current_kid}
    now = int(clock.now)
    assert claims["iss"] == ISSUER
    assert claims["sub"] == "c-0755-001"
    assert claims["aud"] == AUDIENCE
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (now, now, now + 300)
    assert claims["client_id"] == "mobile-app"
    assert claims["scope"] == "home:read search:read"
    assert claims["fulcrum_kind"] == "customer"
    assert len(claims["jti"]) >= 16


def test_verify_returns_the_principal(svc: TokenService, clock: FakeClock) -> None:
    """A valid token verifies to a Principal with its subject, client, scopes, kind, jti and expiry."""
    token = svc.issue("ops-li", ["platform:read"], kind="staff", client_id="staff-console", ttl_seconds=60)
    principal = svc.verify(token)
    claims = _unb64(token.split(".")[1])
    assert principal == Principal(
        sub="ops-li", client_id="staff-console", scopes=frozenset({"platform:read"}), kind="staff",
        token_id=claims["jti"], expires_at=int(clock.now) + 60,
    )


def test_each_token_has_a_fresh_jti(svc: TokenService) -> None:
    """Two tokens for the same subject differ in jti."""
    assert svc.verify(svc.issue("c-1", [])).token_id != svc.verify(svc.issue("c-1", [])).token_id


def test_verify_token_exposes_typed_claims(svc: TokenService) -> None:
    """verify_token returns the claims as a typed struct alongside the principal."""
    verified = svc.verify_token(svc.issue("c-1", ["home:read"], ttl_seconds=30))
    assert isinstance(verified.claims, AccessTokenClaims)
    assert verified.claims.scopes == frozenset({"home:read"})
    assert verified.claims.kind == "customer"


def test_from_settings_uses_the_settings(tmp_path: Path) -> None:
    """from_settings takes issuer, audience, lifetime and the key file of state_dir from the settings."""
    settings = load_settings(
        environ={}, state_dir=str(tmp_path), issuer="https://bank.example", audience="app-x",
        access_token_ttl_seconds=120,
    )
    svc = TokenService.from_settings(settings)
    claims = _unb64(svc.issue("c-1", []).split(".")[1])
    lifetime = claims["exp"] - claims["iat"]
    assert (claims["iss"], claims["aud"], lifetime) == ("https://bank.example", "app-x", 120)
    assert (tmp_path / "signing-keys.json").is_file()


@pytest.mark.parametrize(
    ("sub", "scopes", "kwargs", "message"),
    [
        ("", ["home:read"], {}, "sub must be"),
        ("c-1", ["home:raed"], {}, "unknown scope 'home:raed'"),
        ("c-1", ["registry:review"], {}, "staff tokens only"),
        ("c-1", ["platform:read"], {"kind": "client"}, "staff tokens only"),
        ("c-1", [], {"kind": "robot"}, "unknown principal kind"),
        ("c-1", [], {"ttl_seconds": 301}, "between 1 and 300"),
        ("c-1", [], {"ttl_seconds": 0}, "between 1 and 300"),
        ("c-1", [], {"client_id": ""}, "client_id"),
    ],
)
def test_issue_refuses_bad_requests(
    svc: TokenService, sub: str, scopes: list[str], kwargs: dict[str, Any], message: str
) -> None:
    """Empty subject, unknown scope, staff scope outside a staff token, bad kind or lifetime: ValueError."""
    with pytest.raises(ValueError, match=message):
        svc.issue(sub, scopes, **kwargs)


# -- verifying: every refusal has its code -------------------------------------------------------


@pytest.mark.parametrize("token", ["", None])
def test_missing_token(svc: TokenService, token: str | None) -> None:
    """No token at all is token.missing."""
    assert _code(svc, token or "") == "token.missing"


@pytest.mark.parametrize(
    "token",
    ["abc", "a.b.c", "a.b", "....", "eyJhbGciOiJFUzI1NiJ9.e30", "é.é.é", "x" * (MAX_TOKEN_BYTES + 1)],
)
def test_garbage_is_malformed(svc: TokenService, token: str) -> None:
    """Strings that are not a compact JWS (or are absurdly long) are token.malformed."""
    assert _code(svc, token) == "token.malformed"


def test_expired(svc: TokenService, clock: FakeClock) -> None:
    """A token past its exp (beyond the leeway) is token.expired, even after it was cached as valid."""
    token = svc.issue("c-1", ["home:read"], ttl_seconds=60)
    svc.verify(token)
    clock.now += 60 + svc.leeway_seconds
    assert _code(svc, token) == "token.expired"


def test_within_leeway_still_valid(svc: TokenService, clock: FakeClock) -> None:
    """A token a moment past exp but within the clock-skew leeway is still accepted."""
    token = svc.issue("c-1", ["home:read"], ttl_seconds=60)
    clock.now += 60 + svc.leeway_seconds - 1
    assert svc.verify(token).sub == "c-1"


def test_not_yet_valid(svc: TokenService, store: KeyStore, clock: FakeClock) -> None:
    """A token whose nbf is in the future is token.not_yet_valid."""
    later = int(clock.now) + 120
    token = _sign(store, _claims(clock, nbf=later, iat=int(clock.now), exp=later + 60))
    assert _code(svc, token) == "token.not_yet_valid"


def test_bad_signature(svc: TokenService) -> None:
    """A token whose payload was altered after signing is token.bad_signature."""
    header, _, signature = svc.issue("c-1", ["home:read"]).split(".")
    forged_claims = _b64(json.dumps({"sub": "c-2", "scope": "home:read transactions:write"}).encode())
    assert _code(svc, f"{header}.{forged_claims}.{signature}") == "token.bad_signature"


def test_token_from_another_state_dir(svc: TokenService, tmp_path: Path, clock: FakeClock) -> None:
    """A token from a host with other keys is refused: its kid is unknown here."""
    other = TokenService(
        KeyStore.open(tmp_path / "other"), issuer=ISSUER, audience=AUDIENCE, max_ttl_seconds=300, clock=clock
    )
    assert _code(svc, other.issue("c-1", ["home:read"])) == "token.bad_signature"


def test_wrong_issuer(svc: TokenService, store: KeyStore, clock: FakeClock) -> None:
    """A token (signed by our key) naming another issuer is token.wrong_issuer."""
    other = TokenService(store, issuer="https://evil.test", audience=AUDIENCE, max_ttl_seconds=300)
    assert _code(svc, other.issue("c-1", ["home:read"])) == "token.wrong_issuer"


def test_a_wrong_issuer_names_both_issuers(svc: TokenService, store: KeyStore) -> None:
    """It said only "issued by another issuer": which one, and which this host expects, is named, and
    where to get a token this host accepts (a demo on another port with FULCRUM_ISSUER left unset in
    the terminal running ``fulcrum token issue`` got only the two issuers)."""
    other = TokenService(store, issuer="https://staging.test", audience=AUDIENCE, max_ttl_seconds=300)
    with pytest.raises(Unauthorized) as caught:
        svc.verify(other.issue("c-1", ["home:read"]))
    assert caught.value.detail == (
        f"the token was issued by 'https://staging.test', not by this host's issuer {ISSUER!r}; get one "
        f"from this host ({ISSUER}/oauth/token, or `fulcrum token issue` with FULCRUM_ISSUER={ISSUER})"
    )


def test_wrong_audience(svc: TokenService) -> None:
    """A token for another audience is token.wrong_audience; asking for its audience accepts it."""
    token = svc.issue("c-1", ["home:read"], audience="registry-api")
    assert _code(svc, token) == "token.wrong_audience"
    assert _code(svc, svc.issue("c-1", []), audience="registry-api") == "token.wrong_audience"
    assert svc.verify(token, audience="registry-api").sub == "c-1"


def test_audience_list_containing_ours_is_accepted(
    svc: TokenService, store: KeyStore, clock: FakeClock
) -> None:
    """An aud array that includes our audience is accepted; one that does not is refused."""
    assert svc.verify(_sign(store, _claims(clock, aud=["other", AUDIENCE]))).sub == "c-1"
    assert _code(svc, _sign(store, _claims(clock, aud=["other", "more"]))) == "token.wrong_audience"


@pytest.mark.parametrize(
    "header", [{"alg": ["ES256"]}, {"typ": ["at+jwt"]}, {"kid": {"x": 1}}, {"alg": None}]
)
def test_header_values_of_the_wrong_type(svc: TokenService, clock: FakeClock, header: dict[str, Any]) -> None:
    """Header members of the wrong JSON type are refused with a 401, never an exception."""
    full = {"alg": "ES256", "typ": "at+jwt", "kid": svc.keys.current_kid, **header}
    token = f"{_b64(json.dumps(full).encode())}.{_b64(json.dumps(_claims(clock)).encode())}.c2ln"
    assert _code(svc, token) in {"token.malformed", "token.bad_alg"}


def test_alg_none_is_refused(svc: TokenService, clock: FakeClock) -> None:
    """An unsigned token (alg none) is token.bad_alg, with or without a signature part."""
    header = _b64(json.dumps({"alg": "none", "typ": "at+jwt", "kid": svc.keys.current_kid}).encode())
    payload = _b64(json.dumps(_claims(clock)).encode())
    assert _code(svc, f"{header}.{payload}.") == "token.bad_alg"
    assert _code(svc, f"{header}.{payload}.c2ln") == "token.bad_alg"


def test_hs256_signed_with_our_public_key_is_refused(
    svc: TokenService, store: KeyStore, clock: FakeClock
) -> None:
    """The key-confusion attack (HMAC keyed with our public key) is token.bad_alg."""
    public_pem = store.signing_key().as_pem(private=False)
    header = _b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": store.current_kid}).encode())
    payload = _b64(json.dumps(_claims(clock, scope="home:read transactions:write")).encode())
    mac = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert _code(svc, f"{header}.{payload}.{_b64(mac)}") == "token.bad_alg"


def test_attacker_jwk_in_header_is_ignored(svc: TokenService, store: KeyStore, clock: FakeClock) -> None:
    """A token signed by an attacker key embedded as jwk/jku/x5u (naming our kid or theirs) is refused."""
    attacker = ECKey.generate_key("P-256", parameters={"alg": "ES256"}, auto_kid=True)
    claims = json.dumps(_claims(clock, scope="home:read transactions:write")).encode()
    for kid in (store.current_kid, attacker.kid):
        header = {
            "alg": "ES256", "typ": "at+jwt", "kid": kid, "jwk": attacker.as_dict(private=False),
            "jku": "https://evil.test/jwks", "x5u": "https://evil.test/cert",
        }
        token = jws.serialize_compact(header, claims, attacker, algorithms=["ES256"])
        assert _code(svc, token) == "token.bad_signature"


def test_alg_not_matching_the_keys_alg(svc: TokenService, store: KeyStore, clock: FakeClock) -> None:
    """An RS256 token naming our ES256 key's kid is token.bad_alg (the alg is bound to the key)."""
    rsa = RSAKey.generate_key(2048, parameters={"alg": "RS256"})
    header = {"alg": "RS256", "typ": "at+jwt", "kid": store.current_kid}
    token = jws.serialize_compact(header, json.dumps(_claims(clock)).encode(), rsa, algorithms=["RS256"])
    assert _code(svc, token) == "token.bad_alg"


@pytest.mark.parametrize(
    ("header", "claim_overrides"),
    [
        ({"typ": "JWT"}, {}),  # an ID token or other JWT is not an access token
        ({"typ": None}, {}),
        ({"kid": None}, {}),
        ({"crit": ["b64"], "b64": True}, {}),
        ({}, {"jti": None}),  # required claim missing
        ({}, {"client_id": None}),
        ({}, {"sub": ""}),
        ({}, {"exp": "tomorrow"}),  # wrong type
        ({}, {"fulcrum_kind": "admin"}),
        ({}, {"scope": ["home:read"]}),
        ({}, {"exp": None}),
    ],
)
def test_malformed_header_or_claims(
    svc: TokenService,
    store: KeyStore,
    clock: FakeClock,
    header: dict[str, Any],
    claim_overrides: dict[str, Any],
) -> None:
    """Signed tokens with a wrong typ, no kid, crit, or a missing or mistyped claim are token.malformed."""
    token = _sign(store, _claims(clock, **claim_overrides), **header)
    assert _code(svc, token) == "token.malformed"


def test_lifetime_above_the_maximum_is_refused(svc: TokenService, store: KeyStore, clock: FakeClock) -> None:
    """A token (even one signed by us) living longer than max_ttl_seconds is token.malformed."""
    now = int(clock.now)
    assert _code(svc, _sign(store, _claims(clock, iat=now, exp=now + 3600))) == "token.malformed"


def test_non_object_payload(svc: TokenService, store: KeyStore) -> None:
    """A signed payload that is JSON but not an object, or not JSON at all, is token.malformed."""
    key = store.signing_key()
    header = {"alg": "ES256", "typ": "at+jwt", "kid": store.current_kid}
    for payload in (b"[1, 2]", b"not json"):
        token = jws.serialize_compact(header, payload, key, algorithms=["ES256"])
        assert _code(svc, token) == "token.malformed"


def test_cached_token_still_checked_against_audience(svc: TokenService) -> None:
    """A token cached as valid for one audience is not thereby valid for another."""
    token = svc.issue("c-1", ["home:read"])
    assert svc.verify(token).sub == "c-1"
    assert _code(svc, token, audience="registry-api") == "token.wrong_audience"


def test_cache_is_bounded(svc: TokenService) -> None:
    """The verified-token cache never grows past its bound."""
    from fulcrum_core.auth import tokens as tokens_module

    for _ in range(tokens_module._CACHE_SIZE + 10):
        svc.verify(svc.issue("c-1", []))
    assert len(svc._cache) <= tokens_module._CACHE_SIZE


def test_principal_scope_helpers() -> None:
    """has_scopes and missing_scopes answer from the granted set."""
    p = Principal(
        sub="c", client_id="a", scopes=frozenset({"a:b", "c:d"}), kind="customer", token_id="j", expires_at=1
    )
    assert p.has_scopes("a:b", "c:d")
    assert not p.has_scopes("a:b", "e:f")
    assert p.missing_scopes(["e:f", "a:b", "0:0"]) == ["0:0", "e:f"]
    assert msgspec.json.decode(msgspec.json.encode(p), type=Principal) == p
