"""``fulcrum support``: follow a partner's report (it quotes its own ``ctx.request_id``) to the host's logs.

A partner sees an HMAC of its plugin id and the host's request id (a transaction's id on the
transaction path), never the host's id itself. These commands redo that HMAC with the hosts' pairwise
secret: forwards from a host id, or backwards by trying every id in the host's JSON log lines.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterable, Iterator
from typing import IO, NamedTuple

import click
import msgspec

from fulcrum_core.cli._settings import settings_for

__all__ = ["support"]

_ID_FIELDS = ("request_id", "transaction_id")
"""The fields of a JSON log line naming a host id a partner's id may derive from."""


@click.group()
def support() -> None:
    """Tools for the platform team's support engineers."""


def _secret(ctx: click.Context) -> bytes:
    from fulcrum_core.dispatch.context import PAIRWISE_KEY_FILE, existing_pairwise_secret

    settings = settings_for(ctx)
    secret = existing_pairwise_secret(settings)
    if secret is None:
        raise click.ClickException(
            f"no pairwise secret: set FULCRUM_PAIRWISE_SECRET or FULCRUM_STATE_DIR as the hosts have it "
            f"(they keep it in {settings.state_dir}/{PAIRWISE_KEY_FILE})"
        )
    return secret


class _Plugin(NamedTuple):
    """A plugin named on the command line, and its kind where it is known here."""

    id: str
    kind: str | None
    """``department``, ``branch`` or ``partner``; None when neither installed here nor in a registry."""

    @property
    def internal(self) -> bool:
        """A department's or branch's plugin: the host gives it its own request id, unmapped."""
        return self.kind is not None and self.kind != "partner"


def _known_plugin(ctx: click.Context, param: click.Parameter, plugin: str) -> _Plugin:
    """``plugin`` when it is installed here or the registry knows it: a typo's HMAC is no partner's id.
    Without a registry to ask (no database here, or it cannot be read), an id that is not installed is
    mapped as given, with a warning naming an installed id it may have meant: the command needs only
    the pairwise secret, and a support desk may have nothing else."""
    from fulcrum_core.cli.branch import installed_plugins, registry_plugins

    installed, _ = installed_plugins()
    if plugin in installed:
        return _Plugin(plugin, installed[plugin].kind)  # no database needed
    try:
        filed = registry_plugins(settings_for(ctx), otherwise="name a plugin installed here")
    except click.ClickException:
        filed, unchecked = None, "the registry cannot be read"
    else:
        unchecked = "there is no registry to check it against"
    if filed is None:
        meant = difflib.get_close_matches(plugin, list(installed), n=1, cutoff=0.8)
        hint = f" (did you mean {meant[0]}?)" if meant else ""
        click.echo(
            f"warning: {plugin!r} is not installed here and {unchecked}{hint}; mapping it as given", err=True
        )
        return _Plugin(plugin, None)
    known = {*installed, *filed}
    if plugin not in known:
        raise click.BadParameter(
            f"unknown plugin {plugin!r}: neither installed here nor in the registry "
            f"(known plugins: {', '.join(sorted(known)) or 'none'})",
            ctx,
            param,
        )
    return _Plugin(plugin, filed[plugin].kind)  # not installed, so the registry's


def _unmapped(secret: bytes, plugin_id: str, request_id: str) -> str:
    """The request id an internal plugin sees for ``request_id``: the host's own."""
    return request_id


def _internal_note(plugin: _Plugin) -> None:
    """Say on standard error that an internal plugin's id is the host's own (stdout stays the answer)."""
    click.echo(
        f"note: {plugin.id!r} is a {plugin.kind} plugin: internal plugins see the host's request id "
        "itself, unmapped (only partner plugins see an HMAC of it)",
        err=True,
    )


def _host_request_id(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """An id the host gives a request (its own or a kept ``X-Request-Id``; a transaction's id too): the
    HMAC of anything else is an id no partner was ever given."""
    from fulcrum_core.observability.logging import REQUEST_ID_WORDS, is_request_id
    from fulcrum_core.parameter_problems import echoed

    if not is_request_id(value):
        raise click.BadParameter(
            f"{echoed(value)} is no id the host gives a request ({REQUEST_ID_WORDS}): copy it from the "
            "X-Request-Id header or the log line's request_id or transaction_id, without spaces",
            param_hint="HOST_REQUEST_ID",
        )
    return value


@support.command("partner-request-id")
@click.argument("plugin", callback=_known_plugin)
@click.argument("host_request_id", callback=_host_request_id)
@click.pass_context
def partner_request_id_command(ctx: click.Context, plugin: _Plugin, host_request_id: str) -> None:
    """Print the request id partner PLUGIN saw for HOST_REQUEST_ID (a transaction id for a transaction);
    an internal plugin saw HOST_REQUEST_ID itself, which is printed, with a note."""
    from fulcrum_core.dispatch.context import partner_request_id

    if plugin.internal:
        _internal_note(plugin)
        click.echo(host_request_id)
        return
    click.echo(partner_request_id(_secret(ctx), plugin.id, host_request_id))


@support.command("find-request")
@click.argument("plugin", callback=_known_plugin)
@click.argument("partner_request_id")
@click.argument("logs", nargs=-1, type=click.File("r", encoding="utf-8"))
@click.pass_context
def find_request(
    ctx: click.Context, plugin: _Plugin, partner_request_id: str, logs: tuple[IO[str], ...]
) -> None:
    """Print the host id behind PARTNER_REQUEST_ID, which PLUGIN quoted, and the matching log lines.

    LOGS are the hosts' JSON log files (FULCRUM_LOG_JSON=1; default: standard input). Exits 1 when no
    line's request or transaction id gives that partner id. An internal plugin quotes the host's id
    itself: the lines carrying it are printed, with a note.
    """
    from fulcrum_core.dispatch.context import partner_request_id as mapped

    if plugin.internal:
        _internal_note(plugin)
        wanted = partner_request_id.strip()
        derive, secret = _unmapped, b""
    else:
        wanted = partner_request_id.strip().lower()
        derive, secret = mapped, _secret(ctx)
    tried: dict[str, bool] = {}
    found: set[str] = set()
    sources: tuple[IO[str], ...] = logs or (sys.stdin,)
    for raw, line in _json_lines(sources):
        hits = []
        for key in _ID_FIELDS:
            value = line.get(key)
            if not isinstance(value, str) or not value:
                continue
            if value not in tried:
                tried[value] = derive(secret, plugin.id, value) == wanted
            if tried[value]:
                hits.append(value)
        if hits or line.get("partner_request_id") == wanted:
            found.update(hits)
            click.echo(raw)
    if not found:
        raise click.ClickException(f"no request in these logs gives {plugin.id!r} the request id {wanted}")
    click.echo(f"host request: {', '.join(sorted(found))}", err=True)


def _json_lines(files: Iterable[IO[str]]) -> Iterator[tuple[str, dict[str, object]]]:
    """Each JSON object line of ``files`` (text and broken lines are skipped), as read and decoded."""
    decode = msgspec.json.Decoder(dict[str, object]).decode
    for fh in files:
        for raw in fh:
            raw = raw.rstrip("\n")
            if raw.startswith("{"):
                try:
                    yield raw, decode(raw)
                except msgspec.DecodeError:  # a validation error is one too
                    continue
