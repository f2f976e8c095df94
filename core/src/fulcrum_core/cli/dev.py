"""``fulcrum dev [PATH]``: run a local host with the plugin under development, reloading on change.

The host runs in development mode on a throwaway SQLite state directory with the demo customers,
loads only the plugin in PATH (from its working copy), prints a customer token, and shows each hook
call of the plugin with its latency and any scope denial.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import click
from fulcrum_sdk.scopes import APP_SCOPES

from fulcrum_core.cli._settings import settings_for
from fulcrum_core.cli.serve import refuse_busy_port, run_server, server_stack
from fulcrum_core.settings import DEFAULT_ISSUER

if TYPE_CHECKING:
    from fulcrum_core.devhost.project import DevPlugin
    from fulcrum_core.oauth.plugin_clients import PluginClientChange

__all__ = ["dev"]

DEFAULT_CUSTOMER = "c-0755-001"


@click.command()
@click.argument("path", type=click.Path(file_okay=False, path_type=Path), default=Path("."))
@click.option(
    "--port", type=click.IntRange(1, 65535), default=8000, show_default=True, envvar="FULCRUM_PORT",
    help="Port on 127.0.0.1 (or FULCRUM_PORT); the OAuth issuer names it.",
)
@click.option(
    "--customer",
    default=DEFAULT_CUSTOMER,
    show_default=True,
    metavar="ID",
    help="The demo customer the printed token is for (see `fulcrum demo customers`).",
)
@click.option("--no-reload", is_flag=True, help="Do not restart when the plugin's code changes.")
@click.pass_context
def dev(ctx: click.Context, path: Path, port: int, customer: str, no_reload: bool) -> None:
    """Serve the plugin project in PATH on 127.0.0.1 with demo customers; show each hook call."""
    # Imported when it runs: the host (litestar, SQLAlchemy, alembic) would cost `dev --help` seconds.
    from fulcrum_core.auth.tokens import TokenService
    from fulcrum_core.data.provider import DemoDataProvider
    from fulcrum_core.devhost import DevError, find_dev_plugin, prepare_client, prepare_state
    from fulcrum_core.devhost.asgi import PACKAGE_ENV, SOURCE_ENV

    try:
        plugin = find_dev_plugin(path)
    except DevError as exc:
        raise click.ClickException(str(exc)) from None
    record = DemoDataProvider.from_seed().customer(customer)
    if record is None:
        raise click.BadParameter(
            f"no demo customer {customer!r}; list them with `fulcrum demo customers`",
            ctx,
            param_hint="--customer",
        )
    # Before the token and the curl to try are printed: they would name a port another server holds.
    refuse_busy_port("127.0.0.1", port, issuer_follows=True)
    state = Path(tempfile.mkdtemp(prefix="fulcrum-dev-"))
    try:
        env = {
            "FULCRUM_STATE_DIR": str(state),
            "FULCRUM_DATABASE_URL": f"sqlite:///{state / 'fulcrum.db'}",
            "FULCRUM_DEV_MODE": "true",
            # No branch layer: the plugin runs for every demo customer, whatever branches/ says.
            "FULCRUM_BRANCHES_DIR": str(state / "no-branches"),
            SOURCE_ENV: str(plugin.source_root),
            PACKAGE_ENV: plugin.package,
        }
        os.environ.update(env)  # the server process (and each reload) builds its settings from these
        config_file = (ctx.find_root().obj or {}).get("config_file")
        if config_file:
            os.environ["FULCRUM_CONFIG"] = config_file
        settings = settings_for(ctx, dev_mode=True)
        base = f"http://127.0.0.1:{port}"
        named = settings.issuer != DEFAULT_ISSUER or bool(os.environ.get("FULCRUM_ISSUER"))
        note = _issuer_note(settings.issuer, base) if named else None
        if settings.issuer != base and (not named or note is not None):
            # The dev host is its own issuer (its signing key lives in its throwaway state): the OAuth
            # metadata, the tokens and the problem types all point at the port it serves.
            os.environ["FULCRUM_ISSUER"] = base
            settings = settings_for(ctx, dev_mode=True)
        try:
            http, loop = server_stack(settings.http_protocol, settings.event_loop)
        except ValueError as exc:  # a C parser or loop named in the settings that is not installed
            raise click.ClickException(str(exc)) from None
        consented = prepare_state(settings, plugin.manifest, customer)
        client = prepare_client(settings, plugin.manifest)
        token = TokenService.from_settings(settings).issue(customer, sorted(APP_SCOPES), kind="customer")
        if note is not None:
            click.echo(note)
        elif settings.issuer.rstrip("/") != base:
            click.echo(
                f"Note: the OAuth issuer is {settings.issuer}, not this host ({base}): tokens and OAuth "
                "clients must come from there; unset FULCRUM_ISSUER (and `issuer` in --config) to have "
                "this host issue them."
            )
        click.echo(f"Plugin {plugin.manifest.id} from {plugin.package_dir} (development mode)")
        click.echo(f"State (deleted on exit): {state}")
        click.echo(
            f"Customer: {customer} {record.name} (persona {record.persona}, branch {record.profile.branch})"
        )
        if consented:
            click.echo(f"Consent recorded for: {', '.join(sorted(consented))}")
        click.echo(f"Token: {token}")
        click.echo(
            f"OAuth client {client.client_id} ({settings.issuer}/oauth/token): {_client_text(client, plugin)}"
        )
        click.echo(f'Try: curl -H "Authorization: Bearer $TOKEN" {base}/v1/home')
        click.echo(
            f"A new token (they last {settings.access_token_ttl_seconds} s): "
            f"FULCRUM_STATE_DIR={state} FULCRUM_ISSUER={settings.issuer} "
            f"uv run fulcrum token issue --customer {customer}"
        )
        click.echo("Each hook call of the plugin is shown below as [hook] plugin hook outcome latency.")
        # serve's runner: its worker's loop runs on when a plugin stops it, as under `fulcrum serve`
        run_server(
            "fulcrum_core.devhost.asgi:dev_app_factory",
            host="127.0.0.1",
            port=port,
            http=http,
            loop=loop,
            reload_dirs=None if no_reload else [str(plugin.package_dir)],
        )
    finally:
        shutil.rmtree(state, ignore_errors=True)


_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def _issuer_note(issuer: str, base: str) -> str | None:
    """A note when ``issuer`` names another port of this machine (a demo's, from an exported
    ``FULCRUM_ISSUER``): the dev host signs with its own throwaway key, so nothing listening there
    could issue a token it accepts; it then is its own issuer. None for any other issuer."""
    split = urlsplit(issuer)
    try:
        port = split.port
    except ValueError:  # a port that is no number: the settings' own check reports it
        return None
    if split.scheme != "http" or split.hostname not in _LOOPBACK or port == urlsplit(base).port:
        return None
    return (
        f"Note: the OAuth issuer {issuer} (FULCRUM_ISSUER or --config) is another local port, "
        f"likely a demo's; this dev host signs its own tokens, so it is its own issuer: {base}"
    )


def _client_text(client: PluginClientChange, plugin: DevPlugin) -> str:
    """How the plugin's backend authenticates on this host (its manifest's ``[oauth]`` at startup)."""
    if client.action == "refused":
        return f"refused: {client.problem}"
    if client.secret is not None:
        return f"HTTP Basic with the secret {client.secret}"
    oauth = plugin.manifest.oauth
    keys = oauth.jwks.keys if oauth is not None and oauth.jwks is not None else ()
    kids = [str(key.get("kid")) for key in keys]
    if not kids:
        return "cannot authenticate until [oauth] in fulcrum-plugin.toml lists your public key"
    return f"private_key_jwt with the key(s) {', '.join(kids)} (restart after changing [oauth])"
