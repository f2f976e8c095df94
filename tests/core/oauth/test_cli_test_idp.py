"""``fulcrum oauth test-idp`` and ``fulcrum oauth assertion``: a test IdP for local trials, then its
assertion accepted by the server's JWT bearer grant; refused where a real IdP is configured."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fulcrum_core.cli import main
from fulcrum_core.settings import OAuthIdp

from .conftest import CUSTOMER, ISSUER

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _env(tmp_path: Path, **more: str) -> dict[str, str]:
    return {"FULCRUM_STATE_DIR": str(tmp_path / "cli-state"), "FULCRUM_ISSUER": ISSUER, **more}


def test_a_real_idp_refuses_the_test_commands(tmp_path: Path) -> None:
    """With ``oauth_idp.issuer`` naming the bank's IdP, neither command makes or signs anything."""
    env = _env(
        tmp_path,
        FULCRUM_OAUTH_IDP__ISSUER="https://login.bank.example",
        FULCRUM_OAUTH_IDP__JWKS=str(tmp_path / "jwks.json"),
    )
    for args in (["oauth", "test-idp"], ["oauth", "assertion", "--customer", CUSTOMER]):
        result = CliRunner().invoke(main, args, env=env)
        assert result.exit_code == 1
        assert "for local trials only" in result.output
    assert not (tmp_path / "cli-state" / "test-idp").exists()


def test_assertion_needs_the_test_idp_first(tmp_path: Path) -> None:
    """No key made yet: one error line saying which command makes it."""
    result = CliRunner().invoke(main, ["oauth", "assertion", "--customer", CUSTOMER], env=_env(tmp_path))
    assert result.exit_code == 1
    assert "run `fulcrum oauth test-idp` first" in result.output


def test_assertion_signs_with_the_key_beside_the_trusted_jwks_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``test-idp`` at the repository root prints the JWK Set's absolute path; ``assertion`` run from
    another directory (the state directory ``.fulcrum`` is relative) found no key and said to make one,
    though the settings exported trust one. It now signs with the key beside that JWK Set."""
    root, elsewhere = tmp_path / "checkout", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    env = {"FULCRUM_STATE_DIR": None, "FULCRUM_ISSUER": ISSUER}
    monkeypatch.chdir(root)
    made = CliRunner().invoke(main, ["oauth", "test-idp"], env=env)
    assert made.exit_code == 0, made.output
    lines = dict(line.split("=", 1) for line in made.stdout.splitlines())
    monkeypatch.chdir(elsewhere)
    signed = CliRunner().invoke(main, ["oauth", "assertion", "--customer", CUSTOMER], env={**env, **lines})
    assert signed.exit_code == 0, signed.output
    header = signed.stdout.split(".")[0]
    kid = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]
    trusted = json.loads(Path(lines["FULCRUM_OAUTH_IDP__JWKS"]).read_text(encoding="utf-8"))
    assert kid == trusted["keys"][0]["kid"]


@pytest.mark.anyio
async def test_the_test_idps_assertion_gets_tokens(
    tmp_path: Path, make_app: Callable[..., Any], oauth_client: Callable[..., Any]
) -> None:
    """The printed settings trust the key; the printed assertion is accepted once."""
    runner = CliRunner()
    made = runner.invoke(main, ["oauth", "test-idp"], env=_env(tmp_path))
    assert made.exit_code == 0, made.output
    lines = dict(line.split("=", 1) for line in made.stdout.splitlines())
    assert lines["FULCRUM_OAUTH_IDP__ISSUER"] == "fulcrum-test-idp"
    assert (tmp_path / "cli-state" / "test-idp" / "private.pem").stat().st_mode & 0o077 == 0
    again = runner.invoke(main, ["oauth", "test-idp"], env=_env(tmp_path))
    assert again.stdout == made.stdout  # the key pair is kept

    signed = runner.invoke(main, ["oauth", "assertion", "--customer", CUSTOMER], env=_env(tmp_path, **lines))
    assert signed.exit_code == 0, signed.output
    app = make_app(
        oauth_idp=OAuthIdp(issuer=lines["FULCRUM_OAUTH_IDP__ISSUER"], jwks=lines["FULCRUM_OAUTH_IDP__JWKS"])
    )
    client = oauth_client(app.client.app)
    token = await client.fetch_token(
        f"{ISSUER}/oauth/token", grant_type=JWT_BEARER, assertion=signed.stdout.strip()
    )
    assert app.runtime.tokens.verify(token["access_token"]).sub == CUSTOMER
