"""``fulcrum token issue``: mint a development access token with the server's own signer and keys.

Prints only the token, so ``TOKEN=$(fulcrum token issue --customer c-0755-001)`` works. It reads the
same settings (``--config``, ``FULCRUM_*``) and therefore the same ``state_dir`` key file as the
server, which accepts the token as if the OAuth server had issued it. Where that key file does not
exist it refuses rather than make new keys: no server running elsewhere would accept their tokens.
"""

from __future__ import annotations

import click
from fulcrum_sdk.scopes import APP_SCOPES, SCOPES

from fulcrum_core.cli._settings import require_key_file, settings_for

__all__ = ["token"]


@click.group()
def token() -> None:
    """Access tokens for development."""


def _scopes(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """Split ``--scope "a b"`` as well as repeated ``--scope``; refuse names not in the vocabulary."""
    names = tuple(name for value in values for name in value.split())
    for name in names:
        if name not in SCOPES:
            known = ", ".join(sorted(SCOPES))
            raise click.BadParameter(f"unknown scope {name!r} (known: {known})", ctx, param)
    return names


def _not_empty(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Refuse an empty (or all-space) value, or one holding a control character, by its option's name: the
    signer would name only the claim."""
    if value is not None and not value.strip():
        raise click.UsageError(f"{param.opts[0]} must not be empty", ctx)
    if value is not None and not value.isprintable():
        raise click.UsageError(f"{param.opts[0]} must not hold a control character (a NUL, a newline)", ctx)
    return value


def _staff_subject(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A staff subject the registry and the audit log can record as who acts (else every registry call
    with the token would be a 403 ``registry.unusable-subject``)."""
    from fulcrum_registry.workflow import MAX_NAME, name_problem  # only when issuing: --help stays light

    _not_empty(ctx, param, value)
    problem = None if value is None else name_problem(value)
    if problem is not None:
        raise click.UsageError(f"--staff {problem} (give a login of 1 to {MAX_NAME} characters)", ctx)
    return value


def _publisher_id(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A publisher id as the registry takes one: the registry refuses every upload of a token naming
    any other (``City-Coupons``), after the token was issued without a word."""
    import re

    from fulcrum_registry.schemas import SLUG_PATTERN, SLUG_WORDS

    if _not_empty(ctx, param, value) is not None and not re.match(SLUG_PATTERN, value or ""):
        raise click.BadParameter(f"{value!r} is no publisher id: {SLUG_WORDS}", ctx, param)
    return value


@token.command("issue")
@click.option(
    "--customer", metavar="ID", callback=_not_empty, help="Customer number: a customer token (kind customer)."
)
@click.option(
    "--staff", metavar="SUBJECT", callback=_staff_subject,
    help="Staff login: a staff token (kind staff); needs --scope.",
)
@click.option(
    "--scope", "scopes", multiple=True, metavar="SCOPE", callback=_scopes,
    help="A scope to grant; repeat or space-separate. Customer default: the app scopes.",
)
@click.option(
    "--ttl", type=click.IntRange(min=1), default=None,
    help="Lifetime in seconds (default and maximum: access_token_ttl_seconds).",
)
@click.option(
    "--client-id", default="fulcrum-dev", show_default=True, callback=_not_empty, help="The client_id claim."
)
@click.option(
    "--publisher", metavar="ID", default=None, callback=_publisher_id,
    help="Staff only: the registry publisher this token publishes for (with --scope registry:publish).",
)
@click.pass_context
def issue(
    ctx: click.Context,
    customer: str | None,
    staff: str | None,
    scopes: tuple[str, ...],
    ttl: int | None,
    client_id: str,
    publisher: str | None,
) -> None:
    """Print a signed access token for a customer or a staff member."""
    if (customer is None) == (staff is None):
        raise click.UsageError("give exactly one of --customer ID or --staff SUBJECT")
    if publisher is not None and staff is None:
        raise click.UsageError("--publisher goes with --staff SUBJECT")
    if staff is not None and not scopes:
        raise click.UsageError("a staff token needs at least one --scope (e.g. --scope platform:read)")
    # A publishing token without its publisher reads the catalogue but submits for nobody (the registry
    # answers an upload 403): said here; a publisher without the scope means nothing, so it is refused.
    if publisher is not None and "registry:publish" not in scopes:
        raise click.UsageError("--publisher goes with --scope registry:publish")
    if staff is not None and "registry:publish" in scopes and publisher is None:
        click.echo(
            "warning: without --publisher ID this token reads the registry's catalogue but can submit for "
            "no publisher", err=True,
        )
    settings = settings_for(ctx)
    if ttl is not None and ttl > settings.access_token_ttl_seconds:
        raise click.BadParameter(
            f"{ttl} is above the maximum lifetime of {settings.access_token_ttl_seconds} seconds", ctx,
            param_hint="--ttl",
        )
    # Imported here, not at the top: the signer's libraries cost a second `token issue --help` need not pay.
    from fulcrum_core.auth.tokens import TokenService

    require_key_file(settings)
    service = TokenService.from_settings(settings)
    try:
        if customer is not None:
            granted = scopes or tuple(sorted(APP_SCOPES))
            jwt = service.issue(customer, granted, kind="customer", client_id=client_id, ttl_seconds=ttl)
        else:
            jwt = service.issue(
                str(staff), scopes, kind="staff", client_id=client_id, ttl_seconds=ttl, publisher=publisher
            )
    except ValueError as exc:  # e.g. a staff scope asked for a customer token
        raise click.UsageError(str(exc)) from exc
    if customer is not None:
        from fulcrum_core.data.provider import DemoDataProvider

        # The server's data is the demo seed; a token for anyone else is refused there (worth trying).
        if DemoDataProvider.from_seed().customer(customer) is None:
            click.echo(
                f"warning: the demo data has no customer {customer!r} (`fulcrum demo customers` lists them): "
                "the server answers this token 403 customer.unknown",
                err=True,
            )
    click.echo(jwt)
