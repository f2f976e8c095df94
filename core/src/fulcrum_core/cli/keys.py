"""``fulcrum keys``: list, rotate and retire the token signing keys of the state directory.

Every worker sharing ``state_dir`` signs new tokens with the current key within a second of a rotation
(``auth/keys.py``); the keys before it go on verifying what they signed until they are retired. What
they signed lives at most ``access_token_ttl_seconds`` (access tokens) or ``oauth_idp.login_seconds``
(consent-page logins), so ``retire`` refuses a key until that long after the key that replaced it was
made, unless told ``--now`` (whoever holds such a token or login is then signed out).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import click
import msgspec

from fulcrum_core.cli._settings import require_key_file, settings_for

if TYPE_CHECKING:
    from fulcrum_core.auth.keys import KeyStore
    from fulcrum_core.settings import Settings

__all__ = ["keys"]

_SIGNING_LAG_SECONDS = 1
"""How long a worker may sign with the old key after a rotation (it looks at the key file every second)."""


class KeyInfo(msgspec.Struct, frozen=True):
    """One signing key as ``keys list --json`` prints it (times in Unix seconds; ``None``: not recorded)."""

    kid: str
    algorithm: str
    created_at: int | None
    current: bool
    replaced_at: int | None
    """When the key made after it was made: it has signed nothing since."""
    retire_after: int | None
    """From then on nothing it signed is still valid: ``keys retire`` takes it without ``--now``."""


@click.group()
def keys() -> None:
    """The token signing keys: list, rotate, retire."""


def _store(settings: Settings) -> KeyStore:
    """The state directory's key store; never creates a key file (no server would know its keys)."""
    from fulcrum_core.auth.keys import KeyStore, SigningKeyError

    require_key_file(settings)
    try:
        return KeyStore.open(settings.state_dir)
    except SigningKeyError as exc:
        raise click.ClickException(str(exc)) from None


def _lifetime(settings: Settings) -> int:
    """The longest anything signed with a key stays valid after the rotation: an access token or a
    consent-page login, plus the verifier's leeway for clocks and the second a worker may go on signing
    with the old key before it sees the new file."""
    from fulcrum_core.auth.tokens import DEFAULT_LEEWAY_SECONDS

    longest = max(settings.access_token_ttl_seconds, settings.oauth_idp.login_seconds)
    return longest + DEFAULT_LEEWAY_SECONDS + _SIGNING_LAG_SECONDS


def _infos(store: KeyStore, settings: Settings) -> list[KeyInfo]:
    """Every key, oldest first, with when it stopped signing and when it may be retired.

    A key stopped signing when the key after it in the file was made (each rotation appends its key):
    the file's order, not the recorded times, says which key that is, since two rotations can fall in
    one second and a clock can be behind. Its time is bounded by the next recorded one, and by every
    time recorded before it (a key cannot be replaced before an older key was made).
    """
    lifetime = _lifetime(settings)
    kids = store.kids
    made = [store.created_at(kid) for kid in kids]
    found: list[KeyInfo] = []
    for index, kid in enumerate(kids):
        current = kid == store.current_kid
        created = made[index]
        after = next((i for i in range(index + 1, len(kids)) if made[i] is not None), None)
        recorded = [t for t in made[: (after or 0) + 1] if t is not None]
        replaced = None if current or after is None else max(recorded)
        key = store.verification_key(kid)
        algorithm = str(key.alg) if key is not None and key.alg else store.algorithm
        found.append(
            KeyInfo(
                kid=kid,
                algorithm=algorithm,
                created_at=created,
                current=current,
                replaced_at=replaced,
                retire_after=None if replaced is None else replaced + lifetime,
            )
        )
    return found


def _when(seconds: int | None) -> str:
    if seconds is None:
        return "not recorded"
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array, for tools.")
@click.pass_context
def list_keys(ctx: click.Context, as_json: bool) -> None:
    """The signing keys, oldest first: which signs new tokens, and when each older one may be retired."""
    settings = settings_for(ctx)
    infos = _infos(_store(settings), settings)
    if as_json:
        click.echo(msgspec.json.encode(infos).decode())
        return
    for info in infos:
        if info.current:
            role = "current: signs new tokens"
        elif info.retire_after is None:
            role = "verifies only; when it stopped signing is not recorded"
        else:
            role = f"verifies only; retire after {_when(info.retire_after)}"
        click.echo(f"{info.kid}  {info.algorithm}  made {_when(info.created_at)}  {role}")


@keys.command("rotate")
@click.pass_context
def rotate(ctx: click.Context) -> None:
    """Make a new current key; prints its kid. The keys before it go on verifying until retired."""
    settings = settings_for(ctx)
    store = _store(settings)
    before = store.current_kid
    kid = store.rotate()
    # The time `keys list` shows and `keys retire` checks, from the new key's recorded creation: a clock
    # read again here is a second later at times, and the commands named two times for one key.
    replaced = next((info for info in _infos(store, settings) if info.kid == before), None)
    clock = int(dt.datetime.now(dt.UTC).timestamp())
    retire_after = clock + _lifetime(settings)
    if replaced is not None and replaced.retire_after is not None:
        retire_after = replaced.retire_after
    click.echo(
        f"new tokens are signed with {kid} by every worker sharing this state directory within a second. "
        f"{before} verifies what it signed until retired: `fulcrum keys retire {before}` after "
        f"{_when(retire_after)} ({max(retire_after - clock, 0)} s from now). Hosts that do not share the "
        "state directory need this key file too (see docs/operations.md).",
        err=True,
    )
    click.echo(kid)


# A kid is a base64url thumbprint and may begin with "-" (or "-h"): it is taken as the argument, never
# as an option, so this command knows no short options (its help is --help alone).
@keys.command("retire", context_settings={"ignore_unknown_options": True, "help_option_names": ["--help"]})
@click.argument("kid")
@click.option(
    "--now", is_flag=True,
    help="Retire it although tokens or consent-page logins it signed may still be valid (they stop working).",
)
@click.pass_context
def retire(ctx: click.Context, kid: str, now: bool) -> None:
    """Stop accepting tokens signed by KID (not the current key: rotate first)."""
    settings = settings_for(ctx)
    store = _store(settings)
    infos = {info.kid: info for info in _infos(store, settings)}
    info = infos.get(kid)
    if info is None:
        raise click.BadParameter(f"no key {kid!r}; the keys are {', '.join(infos)}", ctx, param_hint="KID")
    if info.current:
        raise click.BadParameter(
            f"{kid} is the current signing key: `fulcrum keys rotate` first, then retire it once what it "
            "signed has expired",
            ctx, param_hint="KID",
        )
    clock = int(dt.datetime.now(dt.UTC).timestamp())
    if not now and (info.retire_after is None or clock < info.retire_after):
        until = (
            f"until {_when(info.retire_after)}" if info.retire_after is not None
            else f"for up to {_lifetime(settings)} s after the key that replaced it was made (not recorded)"
        )
        raise click.ClickException(
            f"tokens and consent-page logins {kid} signed may still be valid {until}; retiring it now signs "
            "their holders out: wait, or give --now"
        )
    store.retire(kid)
    click.echo(f"retired {kid}: tokens it signed are refused by every worker within a second", err=True)
