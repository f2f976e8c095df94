"""``fulcrum oauth``: the authorization server's clients, and a test identity provider for local trials."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import click

from fulcrum_core.cli._settings import existing_database, settings_for
from fulcrum_core.settings import Settings

__all__ = ["oauth"]

log = logging.getLogger("fulcrum.oauth")


@click.group()
def oauth() -> None:
    """OAuth clients of the authorization server; a test identity provider for local trials."""


@oauth.command("rotate-secret")
@click.argument("client_id")
@click.pass_context
def rotate_secret(ctx: click.Context, client_id: str) -> None:
    """Give secret-based client CLIENT_ID (an internal plugin's backend, ``plugin-<id>``, or a staff
    tool) a new secret.

    The new secret is printed once, alone on standard output (``SECRET=$(fulcrum oauth rotate-secret
    plugin-pension)``); the old one stops working at once.
    """
    from fulcrum_core.errors import NotFound
    from fulcrum_core.oauth.clients import ClientStore

    database = existing_database(settings_for(ctx))
    try:
        store = ClientStore(database)
        secret = store.rotate_secret(client_id)
    except NotFound as exc:
        meant = store.get(f"plugin-{client_id}")
        if meant is not None and meant.auth_method == "client_secret_basic":
            raise click.ClickException(
                f"{exc.detail}: did you mean plugin-{client_id}? An internal plugin's backend is the client "
                "plugin-<plugin id>"
            ) from None
        raise click.ClickException(
            f"{exc.detail}: only a client authenticating with a secret (client_secret_basic) has one to "
            "rotate; a partner's client signs with its registered key instead"
        ) from None
    finally:
        database.dispose()
    log.warning("OAuth client %s was given a new secret; the old one no longer works", client_id)
    click.echo(f"{client_id}: new secret below; the old one no longer works. It is shown only now.", err=True)
    click.echo(secret)


def _staff_scopes(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """Split ``--scope "a b"`` as well as repeated ``--scope``; only staff scopes, and not
    ``registry:publish`` (a client's tokens name no publisher)."""
    from fulcrum_sdk.scopes import SCOPES

    names = tuple(dict.fromkeys(name for value in values for name in value.split()))
    staff = sorted(n for n, s in SCOPES.items() if s.kind == "staff" and n != "registry:publish")
    for name in names:
        if name == "registry:publish":
            raise click.BadParameter(
                "a client's tokens name no publisher, so they could submit for none: a publisher's CI uses "
                "`fulcrum token issue --staff LOGIN --scope registry:publish --publisher ID`"
            )
        if name not in staff:
            known = ", ".join(staff)
            raise click.BadParameter(f"{name!r} is not a staff scope; the staff scopes are {known}")
    if not names:
        raise click.BadParameter(f"give at least one; the staff scopes are {', '.join(staff)}")
    return names


_CLIENT_ID = re.compile(r"[A-Za-z0-9._-]+")
"""What a staff client's id may hold: HTTP Basic authentication gives it back unchanged (``:`` would
split it from the secret and ``%`` be decoded) and the printed curl line needs no quoting."""


def _staff_client_id(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not _CLIENT_ID.fullmatch(value):
        raise click.BadParameter(
            f"{value!r}: use letters, digits, '.', '_' and '-' (the id is sent with the secret in HTTP Basic "
            "authentication, where ':' separates them)"
        )
    return value


@oauth.command("add-staff-client")
@click.argument("client_id", callback=_staff_client_id)
@click.option(
    "--scope", "scopes", multiple=True, callback=_staff_scopes, metavar="SCOPE",
    help="A staff scope the client may ask for (repeat, or space-separated), e.g. platform:read.",
)
@click.option("--name", default=None, help="What the client is, for people reading it (default: its id).")
@click.pass_context
def add_staff_client(ctx: click.Context, client_id: str, scopes: tuple[str, ...], name: str | None) -> None:
    """Register CLIENT_ID, a staff tool (a metrics scraper, a review dashboard) that gets its own
    tokens with client_credentials; its secret is printed once, alone on standard output."""
    from fulcrum_core.errors import BadRequest
    from fulcrum_core.oauth.clients import ClientStore

    settings = settings_for(ctx)
    database = existing_database(settings)
    try:
        secret = ClientStore(database).register(
            client_id, kind="staff", name_zh=name or client_id, auth_method="client_secret_basic",
            grant_types=["client_credentials"], scopes=scopes,
        )
    except BadRequest as exc:
        raise click.BadParameter(exc.detail, ctx, param_hint="CLIENT_ID") from None
    finally:
        database.dispose()
    if secret is None:
        raise click.ClickException(
            f"a client {client_id!r} exists already: `fulcrum oauth rotate-secret {client_id}` gives it a "
            "new secret, or choose another id"
        )
    log.warning("staff OAuth client %s registered with scopes %s", client_id, " ".join(scopes))
    click.echo(
        f"{client_id}: its secret is below, shown only now. A token: curl -u {client_id}:SECRET "
        f"-d grant_type=client_credentials -d scope=\"{' '.join(scopes)}\" {settings.issuer}/oauth/token",
        err=True,
    )
    click.echo(secret)


TEST_IDP_ISSUER = "fulcrum-test-idp"
"""The ``iss`` of the test identity provider these commands play for local trials."""


def _test_idp_dir(ctx: click.Context) -> tuple[Settings, Path]:
    """The settings and the test IdP's folder; refused where a real IdP is configured."""
    settings = settings_for(ctx)
    configured = settings.oauth_idp.issuer
    if configured not in (None, TEST_IDP_ISSUER):
        raise click.ClickException(
            f"oauth_idp.issuer is {configured!r}, the bank's identity provider: the test IdP is for local "
            f"trials only (oauth_idp.issuer unset or {TEST_IDP_ISSUER!r})"
        )
    return settings, Path(settings.state_dir) / "test-idp"


@oauth.command("test-idp")
@click.pass_context
def test_idp(ctx: click.Context) -> None:
    """Make a test identity provider's key pair for local trials (kept if it exists) and print the
    settings that trust it: ``export $(fulcrum oauth test-idp)``.

    The private key stays in ``<state_dir>/test-idp/private.pem``; ``jwks.json`` beside it is the
    public half, which ``oauth_idp.jwks`` names. Refused where ``oauth_idp.issuer`` names a real IdP.
    """
    from joserfc.jwk import ECKey

    _settings, folder = _test_idp_dir(ctx)
    private, public = folder / "private.pem", folder / "jwks.json"
    if not private.exists():
        folder.mkdir(parents=True, exist_ok=True)
        key = ECKey.generate_key("P-256", parameters={"alg": "ES256", "use": "sig"}, auto_kid=True)
        descriptor = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(key.as_pem(private=True))
        public.write_text(json.dumps({"keys": [key.as_dict(private=False)]}, indent=2), encoding="utf-8")
        click.echo(f"made a test IdP key pair in {folder} (for local trials only)", err=True)
    click.echo(f"FULCRUM_OAUTH_IDP__ISSUER={TEST_IDP_ISSUER}")
    click.echo(f"FULCRUM_OAUTH_IDP__JWKS={public.resolve()}")


def _test_idp_key(settings: Settings, folder: Path) -> Path:
    """The private key beside the JWK Set file the settings trust (``test-idp`` prints its absolute
    path), so an assertion signed in any directory is one the server accepts; else the state
    directory's (a relative one, ``.fulcrum`` by default, is read from the current directory)."""
    jwks = settings.oauth_idp.jwks
    if settings.oauth_idp.issuer == TEST_IDP_ISSUER and jwks and "://" not in jwks:
        return Path(jwks).parent / "private.pem"
    return folder / "private.pem"


@oauth.command("assertion")
@click.option("--customer", required=True, help="The customer number the assertion names (its sub).")
@click.option("--seconds", default=120, show_default=True, type=click.IntRange(10, 600),
              help="How long the assertion lives (oauth_idp.max_assertion_seconds bounds what is accepted).")
@click.pass_context
def assertion(ctx: click.Context, customer: str, seconds: int) -> None:
    """Print an assertion of the test IdP (``fulcrum oauth test-idp``) saying CUSTOMER signed in, for
    ``/oauth/token`` (the jwt-bearer grant) or ``/oauth/login``; each is accepted once.

    Its ``aud`` is the token endpoint of ``issuer``. Refused where ``oauth_idp.issuer`` names a real IdP.
    """
    from authlib.oauth2.rfc7523 import JWTBearerGrant
    from joserfc.jwk import ECKey

    settings, folder = _test_idp_dir(ctx)
    private = _test_idp_key(settings, folder)
    if not private.exists():
        raise click.ClickException(
            f"no test IdP key at {private.absolute()}: run `fulcrum oauth test-idp` first"
        )
    key = ECKey.import_key(private.read_bytes())
    key.ensure_kid()
    audience = settings.issuer.rstrip("/") + "/oauth/token"
    signed = JWTBearerGrant.sign(
        key, TEST_IDP_ISSUER, audience, subject=customer, expires_in=seconds,
        header={"alg": "ES256", "kid": key.kid},
    )
    click.echo(signed)
