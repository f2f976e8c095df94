"""``fulcrum oauth``: the authorization server's clients, as the platform team manages them."""

from __future__ import annotations

import logging

import click

from fulcrum_core.cli._settings import existing_database, settings_for

__all__ = ["oauth"]

log = logging.getLogger("fulcrum.oauth")


@click.group()
def oauth() -> None:
    """OAuth clients of the authorization server."""


@oauth.command("rotate-secret")
@click.argument("client_id")
@click.pass_context
def rotate_secret(ctx: click.Context, client_id: str) -> None:
    """Give secret-based client CLIENT_ID (an internal plugin's backend, ``plugin-<id>``) a new secret.

    The new secret is printed once, alone on standard output (``SECRET=$(fulcrum oauth rotate-secret
    plugin-pension)``); the old one stops working at once.
    """
    from fulcrum_core.errors import NotFound
    from fulcrum_core.oauth.clients import ClientStore

    database = existing_database(settings_for(ctx))
    try:
        secret = ClientStore(database).rotate_secret(client_id)
    except NotFound as exc:
        raise click.ClickException(
            f"{exc.detail}: only a client authenticating with a secret (client_secret_basic) has one to "
            "rotate; a partner's client signs with its registered key instead"
        ) from None
    finally:
        database.dispose()
    log.warning("OAuth client %s was given a new secret; the old one no longer works", client_id)
    click.echo(f"{client_id}: new secret below; the old one no longer works. It is shown only now.", err=True)
    click.echo(secret)
